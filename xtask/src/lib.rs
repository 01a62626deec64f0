//! Host tooling for hv-core, shared by the `cargo xtask` binary and the `hv-tests` QEMU scenarios.
//!
//! - [`topology`]: `topologies/*.toml` → [`hv_bundle::Topology`], with errors that name the fix.
//! - [`artifacts`]: the bare-metal build (hypervisor + domain images) and the boot bundles.
//! - [`iso`]: the GRUB rescue ISO (multiboot2 + the bundle as `module2`).
//! - [`qemu`]: QEMU command lines, accelerator choice, and a captured run with a deadline.
//! - [`packages`]: the Debian packages the host needs, installed when running as root.
//! - [`paths`]: where everything lives.
//! - [`xl`]: the `xl` client of Dom0's toolstack over the control channel.

pub mod artifacts;
pub mod disks;
pub mod iso;
pub mod packages;
pub mod paths;
pub mod qemu;
pub mod topology;
pub mod xl;

/// Prints a progress line for a long step (`==> building ...`) to stderr, so that it shows up
/// even when stdout is a pipe (and in `cargo test` output).
pub fn step(msg: impl std::fmt::Display) {
    eprintln!("==> {msg}");
}

/// `s` as a JSON string literal (quotes, backslashes and control characters escaped).
pub fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A JSON number, or `null` for NaN and infinities.
pub fn json_number(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite()).map_or("null".into(), |v| v.to_string())
}

/// Prints rows of cells as left-aligned columns two spaces apart (the bench tables).
pub fn print_columns<R: AsRef<[String]>>(rows: &[R]) {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for row in rows {
        let cells: Vec<String> = row
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}
