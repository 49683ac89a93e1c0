//! The file-name parser: never panics, and what it accepts it can give back.
#![no_main]

use lensfind_data::naming::{parse_file_name, parse_id, BANDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|name: &str| {
    if let Ok(f) = parse_file_name(name) {
        // Accepted names are exactly `<id>_<band>.fits`, and the id alone parses to the same label and source.
        assert_eq!(format!("{}_{}.fits", f.id, BANDS[f.band]), name);
        assert_eq!(parse_id(&f.id), Ok((f.label, f.source)));
        assert!(f.label.is_none_or(|l| l <= 1) && f.source.is_none_or(|s| s == 1 || s == 2));
    }
});
