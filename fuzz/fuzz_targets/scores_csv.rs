//! The score (logits, submission) and truth CSV readers: never panic, and what they accept holds what they
//! promise (unique ids, finite scores, labels 0/1).
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use lensfind_eval::scores::{read_scores_from, read_truth_from};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = read_scores_from(data, Path::new("fuzz.csv"), &["logit", "pred"]) {
        assert_eq!(s.ids.len(), s.values.len());
        assert!(s.values.iter().all(|v| v.is_finite()));
        assert_eq!(s.ids.iter().collect::<HashSet<_>>().len(), s.ids.len());
        assert!(s.ids.iter().all(|id| !id.is_empty()));
    }
    if let Ok(t) = read_truth_from(data, Path::new("fuzz.csv")) {
        assert!(t.iter().all(|t| t.label <= 1));
        assert_eq!(t.iter().map(|t| &t.id).collect::<HashSet<_>>().len(), t.len());
    }
});
