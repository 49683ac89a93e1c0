//! How values are written in the CSV files the tools exchange, in one place so that every writer agrees.

use std::borrow::Cow;
use std::io;

/// A label or source as a CSV field: the number, or the empty string when unknown (index, meta.csv,
/// val_predictions.csv).
pub fn opt_u8(v: Option<u8>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

/// A field quoted for CSV when it needs it (a comma, a quote or a newline), with quotes doubled, as the csv crate
/// and Python's csv module write it; for writers that format their lines by hand.
pub fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// A CSV writer's error as an I/O error: the one it wraps when there is one (a full disk, a closed pipe), so that
/// it stays visible in the cause chain (csv::Error does not report it as its source), else the error itself.
pub fn csv_io_error(e: csv::Error) -> io::Error {
    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
        if let csv::ErrorKind::Io(io) = e.into_kind() {
            return io;
        }
        unreachable!("the kind was just matched as Io");
    }
    io::Error::other(e)
}

/// The first five of `ids`, then `, ...` if there are more: enough to find the problem, short enough to read.
pub fn first_ids<S: AsRef<str>>(ids: &[S]) -> String {
    let first: Vec<&str> = ids.iter().map(AsRef::as_ref).take(5).collect();
    format!("{}{}", first.join(", "), if ids.len() > 5 { ", ..." } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_numbers() {
        assert_eq!((opt_u8(Some(1)), opt_u8(Some(0)), opt_u8(None)), ("1".into(), "0".into(), String::new()));
    }

    #[test]
    fn fields_are_quoted_as_the_csv_crate_quotes_them() {
        for id in ["plain", "a,b", "say \"hi\"", "two\nlines", ""] {
            let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
            w.write_record([id, "x"]).expect("writing to memory");
            let want = String::from_utf8(w.into_inner().expect("flushing to memory")).expect("UTF-8");
            assert_eq!(format!("{},x\n", csv_field(id)), want, "{id:?}");
        }
    }

    #[test]
    fn long_id_lists_are_cut() {
        let ids: Vec<String> = (0..7).map(|i| i.to_string()).collect();
        assert_eq!(first_ids(&ids), "0, 1, 2, 3, 4, ...");
        assert_eq!(first_ids(&ids[..5]), "0, 1, 2, 3, 4");
    }
}
