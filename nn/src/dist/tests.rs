//! Two ranks in one test process: collectives, and a group restarted on the agent's store.

use super::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One group at a time: the sockets of one test's group could take the port that the other just found free.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static GROUPS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GROUPS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn env(rank: usize, port: u16, attempt: usize, agent_store: bool) -> Env {
    Env {
        rank,
        world: 2,
        local_rank: rank,
        master_addr: "127.0.0.1".into(),
        master_port: port,
        launcher: "torchrun",
        attempt,
        agent_store,
    }
}

#[test]
fn gloo_collectives_between_two_ranks() {
    let _one = one_at_a_time();
    let port = free_port();
    let run = move |rank: usize| {
        let env = env(rank, port, 0, false);
        let pg = ProcessGroup::init(&env, Backend::Gloo, Duration::from_secs(30)).unwrap();
        let t = Tensor::from_slice(&[1.0f32 + rank as f32, 10.0]);
        pg.all_reduce_sum(&t).unwrap();
        let summed = Vec::<f32>::try_from(&t).unwrap();
        let m = Tensor::from_slice(&[rank as f64 * 4.0]);
        pg.all_reduce_mean(&m).unwrap();
        assert_eq!(m.double_value(&[0]), 2.0);
        pg.barrier().unwrap();
        let b = Tensor::from_slice(&[rank as i64 * 7 + 1]);
        pg.broadcast(&b, 1).unwrap();
        let gathered = pg.gather_f64(&vec![rank as f64; rank + 1], Device::Cpu).unwrap();
        pg.finish().unwrap();
        (summed, b.int64_value(&[0]), gathered)
    };
    let other = std::thread::spawn(move || run(1));
    let mine = run(0);
    let theirs = other.join().unwrap();
    for (summed, root, gathered) in [mine, theirs] {
        assert_eq!(summed, [3.0, 20.0]);
        assert_eq!(root, 8, "rank 1's value everywhere");
        assert_eq!(gathered, vec![vec![0.0], vec![1.0, 1.0]], "uneven lengths, rank order");
    }
}

/// torchrun --max-restarts: the agent serves one store to every attempt of the worker group. The second
/// group forms although the first left its Gloo addresses there, and a failure reported in the first attempt
/// is not read as one of the second.
#[test]
fn a_restarted_group_on_the_agents_store_starts_afresh() {
    let _one = one_at_a_time();
    let port = free_port();
    let agent = Store::connect(&env(0, port, 0, false), true, Duration::from_secs(30)).unwrap();
    let attempt = move |k: usize| {
        let run = move |rank: usize| {
            let pg = ProcessGroup::init(&env(rank, port, k, true), Backend::Gloo, Duration::from_secs(30)).unwrap();
            let t = Tensor::from_slice(&[1.0f32 + rank as f32]);
            pg.all_reduce_sum(&t).unwrap();
            let diagnosis = if k == 0 {
                if rank == 1 {
                    pg.report_failure("out of memory");
                }
                pg.barrier().unwrap();
                String::new()
            } else {
                pg.diagnose()
            };
            pg.finish().unwrap();
            (t.double_value(&[0]), diagnosis)
        };
        let other = std::thread::spawn(move || run(1));
        let mine = run(0);
        (mine, other.join().unwrap())
    };
    let ((sum, _), _) = attempt(0);
    assert_eq!(sum, 3.0);
    let ((sum, diagnosis), (other_sum, _)) = attempt(1);
    assert_eq!((sum, other_sum), (3.0, 3.0));
    assert!(diagnosis.starts_with("no other rank reported an error"), "{diagnosis}");
    // The report is there, under the first attempt's keys.
    let first = Store::connect(&env(1, port, 0, true), false, Duration::from_secs(30)).unwrap();
    assert_eq!(first.try_get(&failure_key(1)).unwrap().as_deref(), Some(&b"out of memory"[..]));
    drop(agent);
}

#[test]
fn the_backend_follows_the_device_unless_given() {
    assert_eq!("auto".parse::<Choice<Backend>>().unwrap(), Choice::Auto);
    assert_eq!("nccl".parse::<Choice<Backend>>().unwrap(), Choice::Is(Backend::Nccl));
    let e = "mpi".parse::<Choice<Backend>>().unwrap_err();
    assert!(e.contains("expected gloo or nccl, or auto"), "{e}");
    assert_eq!(Backend::choose(Choice::Auto, Device::Cpu).unwrap(), Backend::Gloo);
    assert_eq!(Backend::choose(Choice::Is(Backend::Gloo), Device::Cpu).unwrap(), Backend::Gloo);
    let e = Backend::choose(Choice::Is(Backend::Nccl), Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("needs GPUs"), "{e}");
}
