//! The index CSV reader: never panics, and an index it accepts survives a write and a second read unchanged.
#![no_main]

use lensfind_data::index::{read_index, write_index};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rows) = read_index(data, "fuzz.csv") else { return };
    let mut again = Vec::new();
    write_index(&rows, &mut again).expect("writing an index to memory");
    let reread = read_index(&again[..], "rewritten.csv").expect("a written index reads back");
    assert_eq!(rows, reread);
});
