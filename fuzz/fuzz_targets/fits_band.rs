//! lens-pack's reading of one band file, from memory: any bytes give an image or an error, never a panic, a
//! crash inside cfitsio, a hang or a runaway allocation. Seeds: files written by lens-synth (scripts/fuzz.sh).
#![no_main]

use lensfind_data::fits::read_band_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = vec![0.0f64; 41 * 41];
    for band in 0..5 {
        let _ = read_band_bytes(data.to_vec(), band, 41, 41, &mut out);
    }
});
