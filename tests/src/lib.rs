//! Harness of the QEMU scenarios: build once, boot a topology, judge the run by its exit code
//! and its serial console lines, and fail with the whole serial log and QEMU's stderr.
//!
//! The runner itself ([`xtask::qemu::run_captured`]: a reader thread sends serial lines through
//! an mpsc channel, the caller waits with a deadline, QEMU is killed on timeout and always waited
//! for) lives in the xtask library because `cargo xtask bench` boots QEMU the same way.
//!
//! Environment: `HV_ARTIFACTS_DIR` (built ELFs; otherwise this harness builds them once per test
//! process), `HV_TEST_ACCEL` = `tcg` (default) | `kvm`, `HV_TEST_TIMEOUT` = seconds per boot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use xtask::artifacts::{self, Output};
use xtask::paths::{ARTIFACTS_ENV, Paths};
pub use xtask::qemu::{
    Accel, EXIT_ALL_EXPECTED, EXIT_PANIC, EXIT_SOME_UNEXPECTED, Firmware, Machine, Run, describe_exit,
};
use xtask::qemu::{Media, Spec};
pub use xtask::topology::Loaded;

/// Per-boot deadline under TCG: generous for a loaded 2-core machine; a passing run takes ~1 s
/// and the harness returns as soon as QEMU exits.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How the hypervisor is booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// QEMU `-kernel` (PVH) with the bundle as `-initrd`.
    Direct,
    /// The GRUB ISO (`-cdrom`, multiboot2, bundle as `module2`).
    Iso,
}

fn paths() -> &'static Paths {
    static P: OnceLock<Paths> = OnceLock::new();
    P.get_or_init(Paths::discover)
}

fn accel() -> Accel {
    match std::env::var("HV_TEST_ACCEL") {
        Ok(a) if !a.is_empty() => Accel::parse(&a).unwrap_or_else(|e| panic!("HV_TEST_ACCEL: {e}")),
        _ => Accel::Tcg,
    }
}

fn timeout() -> Duration {
    match std::env::var("HV_TEST_TIMEOUT") {
        Ok(s) if !s.is_empty() => Duration::from_secs(
            s.parse().unwrap_or_else(|_| panic!("HV_TEST_TIMEOUT={s:?} is not a number of seconds")),
        ),
        // kvm_pvm boots SeaBIOS in seconds and GRUB in tens of seconds.
        _ if accel() == Accel::Kvm => Duration::from_secs(180),
        _ => DEFAULT_TIMEOUT,
    }
}

/// The directory of built bare-metal ELFs: `$HV_ARTIFACTS_DIR`, or built once per process.
pub fn image_dir() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| match std::env::var_os(ARTIFACTS_ENV) {
        Some(d) if !d.is_empty() => Ok(PathBuf::from(d)),
        // OnceLock makes the other test threads wait for this one build.
        _ => artifacts::build_bare_metal(paths(), Output::Capture).map_err(|e| format!("{e:#}")),
    });
    dir.clone().unwrap_or_else(|e| panic!("cannot build the hypervisor and domain images:\n{e}"))
}

/// Loads `topologies/<name>.toml` (panics with the parse error).
pub fn topology(name: &str) -> Loaded {
    xtask::topology::load(&paths().root, Some(name)).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs `make` once per key per process (the others wait), caching the result.
type Cache = Mutex<BTreeMap<String, Result<PathBuf, String>>>;

fn once_per_key(cache: &'static Cache, key: &str, make: impl FnOnce() -> Result<PathBuf, String>) -> PathBuf {
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(key.to_owned()).or_insert_with(make).clone().unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn bundle(t: &Loaded) -> PathBuf {
    static CACHE: Cache = Mutex::new(BTreeMap::new());
    let dir = image_dir();
    once_per_key(&CACHE, &format!("bundle of {}", t.name()), || {
        artifacts::write_bundle(paths(), t, &dir).map_err(|e| format!("{e:#}"))
    })
}

fn iso(t: &Loaded) -> PathBuf {
    static CACHE: Cache = Mutex::new(BTreeMap::new());
    let hv = Paths::hypervisor_elf_in(&image_dir());
    let bundle = bundle(t);
    once_per_key(&CACHE, &format!("ISO of {}", t.name()), || {
        let out = paths().topology_iso(t.name());
        xtask::iso::make_iso(&hv, &bundle, &out).map(|()| out).map_err(|e| format!("{e:#}"))
    })
}

/// `curl` on the host: GET http://127.0.0.1:`port``path`, giving up after `max_secs` → (HTTP
/// status, body); status 0 when curl failed (refused, timed out).
pub fn curl(port: u16, path: &str, max_secs: u32) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", &max_secs.to_string(), "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl (install the curl package): {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// A boot to run: topology, boot path, machine, optional early stop.
pub struct Scenario {
    topology: Loaded,
    boot: Boot,
    machine: Machine,
    firmware: Option<Firmware>,
    disk_dir: Option<PathBuf>,
    stop: Option<Box<StopFn>>,
    watch: Option<Box<WatchFn>>,
    nics: Vec<xtask::qemu::NetDevice>,
    /// At least this long (HV_TEST_TIMEOUT still wins when larger).
    min_timeout: Duration,
    control: Option<PathBuf>,
}

/// A new directory for one run's disk images.
fn fresh_disk_dir(topology: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Paths::discover().target.join("test-disks").join(format!("{topology}-{}-{n}", std::process::id()))
}

type StopFn = dyn Fn(&str) -> bool;
type WatchFn = dyn FnMut(Option<&str>) -> bool;

impl Scenario {
    /// `topologies/<name>.toml`, booted with `-kernel` on q35.
    pub fn new(topology_name: &str) -> Self {
        let topology = topology(topology_name);
        // Host ports of the forwards are chosen now, so a test can aim its clients before booting.
        let nics = xtask::qemu::NetDevice::for_topology(&topology.nics)
            .unwrap_or_else(|e| panic!("cannot set up the network of {topology_name}: {e:#}"));
        Self {
            topology,
            boot: Boot::Direct,
            machine: Machine::Q35,
            firmware: None,
            disk_dir: None,
            stop: None,
            watch: None,
            nics,
            min_timeout: Duration::ZERO,
            control: None,
        }
    }

    /// Gives the run a control channel (COM2 as a Unix socket) and returns its path, for
    /// [`xtask::control::Client`].
    pub fn control_socket(&mut self) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = Paths::discover().target.join("test-run");
        std::fs::create_dir_all(&dir).expect("creating target/test-run");
        let path = dir.join(format!("ctl-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        self.control = Some(path.clone());
        path
    }

    /// A deadline of at least `t` for a scenario that moves a lot of data under TCG.
    pub fn at_least(mut self, t: Duration) -> Self {
        self.min_timeout = t;
        self
    }

    /// The 127.0.0.1 port this run forwards to `guest_port` (a `forward` of the topology's nic).
    pub fn host_port(&self, guest_port: u16) -> u16 {
        self.nics
            .iter()
            .find_map(|n| n.host_port(guest_port))
            .unwrap_or_else(|| panic!("topology {} forwards no port to guest port {guest_port}", self.topology.name()))
    }

    /// Calls `f` with every serial line (`Some`) and every 50 ms without one (`None`) while QEMU
    /// runs, to drive host clients; QEMU is stopped when it returns true. Replaces `stop_when`.
    pub fn watch(mut self, f: impl FnMut(Option<&str>) -> bool + 'static) -> Self {
        self.watch = Some(Box::new(f));
        self
    }

    /// Keep the disk images in `dir` (created when missing) instead of fresh ones, so a second
    /// run sees what the first wrote; the host can read them there.
    pub fn disks_in(mut self, dir: impl Into<PathBuf>) -> Self {
        self.disk_dir = Some(dir.into());
        self
    }

    /// Firmware other than the default (qboot for `-kernel`, SeaBIOS for the ISO); UEFI (OVMF)
    /// boots the ISO only.
    pub fn firmware(mut self, firmware: Firmware) -> Self {
        self.firmware = Some(firmware);
        self
    }

    pub fn boot(mut self, boot: Boot) -> Self {
        self.boot = boot;
        self
    }

    pub fn machine(mut self, machine: Machine) -> Self {
        self.machine = machine;
        self
    }

    /// Runs without the Intel IOMMU the topology would have (`cargo xtask run --no-iommu`).
    pub fn without_iommu(mut self) -> Self {
        self.topology.iommu = false;
        self
    }

    /// Kill QEMU as soon as a line satisfies `f` (for topologies that never power off).
    pub fn stop_when(mut self, f: impl Fn(&str) -> bool + 'static) -> Self {
        self.stop = Some(Box::new(f));
        self
    }

    pub fn run(self) -> Outcome {
        let media = match self.boot {
            Boot::Direct => Media::Direct {
                kernel: Paths::hypervisor_elf_in(&image_dir()),
                initrd: bundle(&self.topology),
                append: None,
            },
            Boot::Iso => Media::Iso(iso(&self.topology)),
        };
        let mut spec = Spec { machine: self.machine, accel: accel(), ..Spec::new(media) }
            .with_xl_memory(self.topology.xl_memory_mib);
        if let Some(f) = self.firmware {
            spec.firmware = f;
        }
        // Disk images: the ones the test chose (to run twice on the same disk), else fresh ones.
        spec.disks = match self.disk_dir {
            Some(dir) => xtask::disks::images(&dir, &self.topology, false),
            None => xtask::disks::images(&fresh_disk_dir(self.topology.name()), &self.topology, true),
        }
        .unwrap_or_else(|e| panic!("cannot create the disk images: {e:#}"));
        spec.nics = self.nics.clone();
        spec.control = self.control.clone();
        // The topology's IOMMU (on unless it says `iommu = false`), where the machine has one.
        spec.iommu = self.topology.iommu && spec.machine == Machine::Q35;
        let run = match (self.watch, self.stop) {
            (Some(mut w), _) => xtask::qemu::run_watched(&spec, timeout().max(self.min_timeout), &mut *w),
            (None, stop) => xtask::qemu::run_captured(&spec, timeout().max(self.min_timeout), stop.as_deref()),
        }
        .unwrap_or_else(|e| panic!("cannot run QEMU: {e:#}"));
        Outcome {
            run,
            topology: self.topology,
            boot: self.boot,
            machine: self.machine,
            firmware: spec.firmware,
            accel: spec.accel,
        }
    }
}

/// A finished run plus what was booted; its `expect_*` methods panic with the full report.
pub struct Outcome {
    pub run: Run,
    pub topology: Loaded,
    pub boot: Boot,
    pub machine: Machine,
    pub firmware: Firmware,
    pub accel: Accel,
}

/// Whole-line match where `*` stands for any run of characters (possibly empty).
pub fn glob(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || line.len() < first.len() + last.len() || !line.ends_with(last) {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A console marker: the line matches `pattern` ([`glob`]) exactly, or followed by a space and
/// more text (`[a] goodbye` matches `[a] goodbye (checksum 0x1)`, not `[a] goodbyes`).
pub fn marker(pattern: &str, line: &str) -> bool {
    glob(pattern, line) || glob(&format!("{pattern} *"), line)
}

/// `^\[[a-z0-9_-]+\] `: the line carries its source's name.
pub fn is_attributed(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else { return false };
    let Some(end) = rest.find("] ") else { return false };
    end > 0 && rest[..end].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Outcome {
    pub fn lines(&self) -> &[String] {
        &self.run.lines
    }

    /// Panics with `why`, the run's outcome, the command, the serial log and QEMU's stderr.
    #[track_caller]
    pub fn fail(&self, why: &str) -> ! {
        let mut s = String::new();
        let _ = writeln!(s, "{why}");
        let _ = writeln!(
            s,
            "  topology {} ({}), {} after {} on {} under {}",
            self.topology.name(),
            self.topology.path.display(),
            match self.boot {
                Boot::Direct => "-kernel (PVH)",
                Boot::Iso => "GRUB ISO (multiboot2)",
            },
            self.firmware.name(),
            self.machine.name(),
            self.accel.name()
        );
        let _ = writeln!(s, "  outcome: {}", self.run.outcome());
        let _ = writeln!(s, "  command: {}", self.run.command);
        let _ = writeln!(s, "--- serial console ({} lines) ---", self.run.lines.len());
        for l in &self.run.lines {
            let _ = writeln!(s, "{l}");
        }
        let _ = writeln!(s, "--- QEMU stderr ---\n{}", self.run.stderr.trim_end());
        let _ = writeln!(s, "--- end ---");
        panic!("{s}");
    }

    /// The run ended by itself with this QEMU exit status (33 = every domain as expected).
    #[track_caller]
    pub fn expect_exit(&self, code: i32) {
        if self.run.timed_out || self.run.stopped || self.run.exit_code != Some(code) {
            self.fail(&format!("expected QEMU to exit with {code} ({})", describe_exit(Some(code))));
        }
    }

    /// The harness stopped QEMU (at the stop line, or when the watcher was done): QEMU had not
    /// exited by then, so no hypervisor panic (exit status 255) and no triple fault (0).
    #[track_caller]
    pub fn expect_stopped(&self) {
        if !self.run.stopped {
            self.fail("expected the harness to stop QEMU while it was still running (see the outcome)");
        }
    }

    /// Index of the first line at or after `from` that is the [`marker`] `pattern`.
    pub fn find_from(&self, from: usize, pattern: &str) -> Option<usize> {
        self.run.lines.iter().skip(from).position(|l| marker(pattern, l)).map(|i| i + from)
    }

    pub fn find(&self, pattern: &str) -> Option<usize> {
        self.find_from(0, pattern)
    }

    /// Index of the first line matching `pattern`, else fail.
    #[track_caller]
    pub fn expect_line(&self, pattern: &str) -> usize {
        self.find(pattern).unwrap_or_else(|| self.fail(&format!("no serial line matches {pattern:?}")))
    }

    /// Every pattern matches some line, each after the previous one's line.
    #[track_caller]
    pub fn expect_in_order(&self, patterns: &[&str]) -> Vec<usize> {
        let mut from = 0;
        let mut at = Vec::new();
        for p in patterns {
            match self.find_from(from, p) {
                Some(i) => {
                    at.push(i);
                    from = i + 1;
                }
                None if self.find(p).is_some() => {
                    self.fail(&format!("{p:?} appears, but not after {:?}", patterns[..at.len()].last()))
                }
                None => self.fail(&format!("no serial line matches {p:?} (expected in order: {patterns:?})")),
            }
        }
        at
    }

    #[track_caller]
    pub fn expect_no_line(&self, pattern: &str) {
        if let Some(i) = self.find(pattern) {
            self.fail(&format!("line {} {:?} should not appear (matches {pattern:?})", i + 1, self.run.lines[i]));
        }
    }

    /// The bytes of the pcap stream domain `name` wrote to its console (`[name] pcap <hex>`
    /// lines, concatenated in order; see docs/net.md).
    #[track_caller]
    pub fn pcap(&self, name: &str) -> Vec<u8> {
        let prefix = format!("[{name}] pcap ");
        let mut out = Vec::new();
        for (i, l) in self.run.lines.iter().enumerate() {
            let Some(hex) = l.strip_prefix(&prefix) else { continue };
            let hex = hex.trim();
            if hex.len() % 2 != 0 {
                self.fail(&format!("line {}: odd number of hex digits in a pcap line", i + 1));
            }
            for pair in hex.as_bytes().chunks(2) {
                let byte = std::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok());
                out.push(byte.unwrap_or_else(|| self.fail(&format!("line {}: not hex: {l:?}", i + 1))));
            }
        }
        out
    }

    pub fn count(&self, pattern: &str) -> usize {
        self.run.lines.iter().filter(|l| marker(pattern, l)).count()
    }

    /// Names of the (non-Dom0) domains of the topology running `image`; fails if there are none.
    #[track_caller]
    pub fn domains_running(&self, image: &str) -> Vec<String> {
        let names: Vec<String> = self.topology.domains_with_image(image).iter().map(|d| d.name.clone()).collect();
        if names.is_empty() {
            self.fail(&format!("topology {} has no domain running image {image:?}", self.topology.name()));
        }
        names
    }

    /// The domain id Dom0 reported for `name` (`[dom0] started <name> as domain <id>`).
    #[track_caller]
    pub fn domain_id(&self, name: &str) -> u32 {
        let prefix = format!("[dom0] started {name} as domain ");
        let line = self.run.lines.iter().find(|l| l.starts_with(&prefix));
        let id = line.and_then(|l| l[prefix.len()..].trim().parse().ok());
        id.unwrap_or_else(|| self.fail(&format!("no line \"{prefix}<id>\"")))
    }

    /// Each `hello` domain greeted with the id Dom0 gave it, said goodbye, and Dom0 saw it end as expected.
    #[track_caller]
    pub fn expect_hellos_finished(&self) {
        for name in self.domains_running("hello") {
            let id = self.domain_id(&name);
            self.expect_in_order(&[
                &format!("[{name}] hello from domain {id}"),
                &format!("[{name}] goodbye"),
                &format!("[dom0] {name} ended: * (expected)"),
            ]);
            self.expect_no_line(&format!("[hv] domain * ({name}) crashed:*"));
        }
    }

    /// The hypervisor's and Dom0's summary of a topology that powered off cleanly.
    #[track_caller]
    pub fn expect_clean_finish(&self) {
        self.expect_exit(EXIT_ALL_EXPECTED);
        self.expect_in_order(&[
            &format!("[dom0] topology {}: * domains", self.topology.name()),
            "[dom0] all domains running",
            "[dom0] all domains finished: * as expected, 0 unexpected",
            "[hv] power off requested by dom0, code 0",
        ]);
        self.expect_no_line("[dom0] * (UNEXPECTED*");
    }

    /// Every line is `[<name>] <text>`, and no line carries a second source's prefix (torn lines).
    #[track_caller]
    pub fn expect_every_line_attributed(&self) {
        let mut names: Vec<String> = self.topology.topology.domains.iter().map(|d| d.name.clone()).collect();
        names.extend(["hv".to_owned(), "dom0".to_owned()]);
        for (i, l) in self.run.lines.iter().enumerate() {
            if !is_attributed(l) {
                self.fail(&format!("line {} is not attributed (must match ^\\[[a-z0-9_-]+\\] ): {l:?}", i + 1));
            }
            if let Some(n) = names.iter().find(|n| l[1..].contains(&format!("[{n}] "))) {
                self.fail(&format!("line {} holds a second prefix [{n}] (torn or interleaved output): {l:?}", i + 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_whole_lines() {
        assert!(glob("[hv] hv-core * booted via pvh", "[hv] hv-core 0.1.0 booted via pvh"));
        assert!(!glob("[hv] hv-core * booted via pvh", "[hv] hv-core 0.1.0 booted via pvh!"));
        assert!(glob(
            "[hv] domain * (boom) crashed:*rip=0x*",
            "[hv] domain 3 (boom) crashed: page fault at 0x0, rip=0x2000a1"
        ));
        assert!(!glob("[hv] domain * (boom) crashed:*", "[hv] domain 3 (boom2) crashed: x"));
        assert!(glob("[dom0] a ended: * (expected)", "[dom0] a ended: exit (expected)"));
        assert!(!glob("[dom0] a ended: * (expected)", "[dom0] a ended: crash (UNEXPECTED, expected exit)"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
        assert!(glob("a*b*a", "aba") && !glob("a*a", "a"));
        assert!(glob("*", ""));
    }

    #[test]
    fn markers_allow_trailing_text_after_a_space() {
        assert!(marker("[a] hello from domain 1", "[a] hello from domain 1"));
        assert!(marker("[a] hello from domain 1", "[a] hello from domain 1 (a), 4 MiB of RAM"));
        assert!(!marker("[a] hello from domain 1", "[a] hello from domain 12"));
        assert!(marker("[a] goodbye", "[a] goodbye (checksum 0x78e8)"));
        assert!(!marker("[a] goodbye", "[a] goodbyes"));
    }

    #[test]
    fn attribution() {
        assert!(is_attributed("[hv] x"));
        assert!(is_attributed("[hello-1_b] hello from domain 2"));
        assert!(!is_attributed("hello"));
        assert!(!is_attributed("[] x"));
        assert!(!is_attributed("[Hv] x"));
        assert!(!is_attributed("[hv]x"));
        assert!(!is_attributed(""));
    }
}
