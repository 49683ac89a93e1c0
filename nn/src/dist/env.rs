//! Where this process sits among the processes of a run: ranks from torchrun's or Slurm's variables.

use anyhow::{anyhow, bail, Context, Result};

/// Where this process sits among the processes of a run, as the launcher described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub rank: usize,
    pub world: usize,
    /// The rank on this node: the index of the GPU this process uses.
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// "torchrun" or "slurm".
    pub launcher: &'static str,
    /// Which start of the worker group this is: torchrun's TORCHELASTIC_RESTART_COUNT (0, then 1 after the first
    /// `--max-restarts` restart, ...), else 0. torchrun's agent keeps serving the same store across restarts, so
    /// each attempt keeps its keys apart (as PyTorch's workers do): a restarted group must not find the Gloo
    /// addresses or the failure reports of the group before it.
    pub attempt: usize,
    /// Whether the launcher serves the store (torchrun's agent: TORCHELASTIC_USE_AGENT_STORE=True), so that
    /// every rank is a client; else rank 0 serves it.
    pub agent_store: bool,
}

impl Env {
    /// Reads torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT,
    /// TORCHELASTIC_RESTART_COUNT, TORCHELASTIC_USE_AGENT_STORE) or else Slurm's
    /// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, with MASTER_ADDR and MASTER_PORT from the batch script). None
    /// when neither describes more than one process: a plain single-process run.
    pub fn from_env() -> Result<Option<Env>> {
        Env::from_vars(|k| std::env::var(k).ok())
    }

    /// As from_env, with the variables from `var`.
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Env>> {
        let num = |k: &str| -> Result<Option<usize>> {
            var(k).map(|v| v.trim().parse::<usize>().with_context(|| format!("{k}={v:?} is not a number"))).transpose()
        };
        let (launcher, rank, world, local_rank) = if let Some(world) = num("WORLD_SIZE")? {
            let rank = num("RANK")?.ok_or_else(|| anyhow!("WORLD_SIZE is set but RANK is not"))?;
            ("torchrun", rank, world, num("LOCAL_RANK")?.unwrap_or(0))
        } else if let (Some(rank), Some(world)) = (num("SLURM_PROCID")?, num("SLURM_NTASKS")?) {
            ("slurm", rank, world, num("SLURM_LOCALID")?.unwrap_or(0))
        } else {
            return Ok(None);
        };
        if world <= 1 {
            return Ok(None);
        }
        if rank >= world {
            bail!("rank {rank} is not below the world size {world} ({launcher}'s variables)");
        }
        let master_addr = var("MASTER_ADDR").ok_or_else(|| {
            anyhow!("{world} processes ({launcher}) but MASTER_ADDR is not set; export MASTER_ADDR and MASTER_PORT (see scripts/slurm/)")
        })?;
        let master_port = match var("MASTER_PORT") {
            Some(p) => p.trim().parse::<u16>().with_context(|| format!("MASTER_PORT={p:?} is not a port"))?,
            None => bail!("{world} processes ({launcher}) but MASTER_PORT is not set"),
        };
        let attempt = num("TORCHELASTIC_RESTART_COUNT")?.unwrap_or(0);
        let agent_store = var("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v == "True");
        Ok(Some(Env { rank, world, local_rank, master_addr, master_port, launcher, attempt, agent_store }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn ranks_from_torchrun_or_slurm() {
        assert_eq!(Env::from_vars(vars(&[])).unwrap(), None);
        let torchrun = [
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node1"),
            ("MASTER_PORT", "29500"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "2"),
        ];
        let e = Env::from_vars(vars(&torchrun)).unwrap().unwrap();
        assert_eq!((e.rank, e.world, e.local_rank, e.launcher), (3, 8, 1, "torchrun"), "torchrun wins");
        assert_eq!((e.master_addr.as_str(), e.master_port, e.attempt, e.agent_store), ("node1", 29500, 0, false));
        let slurm = [
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("MASTER_ADDR", "n"),
            ("MASTER_PORT", "1"),
        ];
        let e = Env::from_vars(vars(&slurm)).unwrap().unwrap();
        assert_eq!((e.rank, e.world, e.local_rank, e.launcher), (5, 8, 1, "slurm"));
        let restarted =
            [torchrun.as_slice(), &[("TORCHELASTIC_RESTART_COUNT", "2"), ("TORCHELASTIC_USE_AGENT_STORE", "True")]]
                .concat();
        let e = Env::from_vars(vars(&restarted)).unwrap().unwrap();
        assert_eq!((e.attempt, e.agent_store), (2, true));
        // One task is a plain run, whatever the launcher.
        assert_eq!(Env::from_vars(vars(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")])).unwrap(), None);
        let no_master = Env::from_vars(vars(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2")])).unwrap_err();
        assert!(no_master.to_string().contains("MASTER_ADDR"), "{no_master}");
        let bad =
            Env::from_vars(vars(&[("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "1")]));
        assert!(bad.unwrap_err().to_string().contains("not below"));
        assert!(Env::from_vars(vars(&[("RANK", "x"), ("WORLD_SIZE", "2")])).is_err());
    }
}
