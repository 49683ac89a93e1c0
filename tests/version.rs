//! `--version` of every tool: its version; for the torch tools also the libtorch in use and CUDA's state.

use lensfind_e2e::*;

#[test]
fn every_tool_says_its_version() {
    let version = env!("CARGO_PKG_VERSION");
    for name in tool_names() {
        let name = name.as_str();
        let out = ok(tool(name).arg("--version"));
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(format!("{name} {version}").as_str()), "{name}: {text}");
        if links_libtorch(name) {
            let torch = lines.next().unwrap_or_default();
            // The version of the loaded library, and where it was loaded from.
            assert!(torch.starts_with("libtorch 2.13.0") && torch.contains("/lib)"), "{name}: {text}");
            let cuda = lines.next().unwrap_or_default();
            assert!(cuda == "CUDA: not available" || cuda.starts_with("CUDA: available, "), "{name}: {text}");
        }
        assert_eq!(lines.next(), None, "{name}: {text}");
    }
}

#[test]
fn short_flag_too_and_help_is_not_slowed_by_the_probe() {
    let out = ok(tool("lens-infer").arg("-V"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("CUDA: "));
    // Without the flag the version stays plain (it is what the man page shows).
    let out = ok(tool("lens-infer").arg("--help"));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(!help.contains("CUDA: ") && !help.contains("libtorch 2."), "{help}");
}
