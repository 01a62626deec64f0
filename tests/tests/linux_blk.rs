//! Debian's Linux on the Rust blkback (issue 15, scenario 1): two QEMU boots on one disk image.
//! Boot 1 (`linux-disk-write`) makes an ext4 file system on xvda with the host's mke2fs, writes
//! files of known content, prints their md5sums, syncs and powers off; boot 2
//! (`linux-disk-verify`) mounts it and checks every file. Then the host judges the image itself:
//! `e2fsck -fn` finds nothing to fix, and `debugfs` reads the files back with the md5sums Linux
//! printed. Needs e2fsprogs on the host (the guest's mke2fs comes from it too).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hv_tests::{Outcome, Scenario};

/// What `guest.mode=disk-write` writes (xtask/src/linux_guest/init.sh), by name under the mount.
const FILES: [&str; 3] = ["dir/note.txt", "lcg.txt", "seq.txt"];

/// `seq.txt`: `seq 1 200000`, 1,288,895 bytes whose every 4 KiB block differs; the host knows
/// its content without Linux.
fn seq_txt() -> Vec<u8> {
    (1..=200_000).map(|i| format!("{i}\n")).collect::<String>().into_bytes()
}

/// The `linux-guest: <verb> <name> <md5>` lines of the run, by name.
fn sums(o: &Outcome, verb: &str) -> BTreeMap<String, String> {
    let prefix = format!("[linux] linux-guest: {verb} ");
    o.lines()
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (name, md5) = rest.split_once(' ').unwrap_or_else(|| o.fail(&format!("malformed line: {rest:?}")));
            assert!(md5.len() == 32 && md5.bytes().all(|b| b.is_ascii_hexdigit()), "not an md5: {rest:?}");
            (name.to_owned(), md5.to_owned())
        })
        .collect()
}

/// The md5 of `data`, by the host's md5sum (coreutils).
fn md5(data: &[u8]) -> String {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run md5sum (coreutils): {e}"));
    child.stdin.take().expect("piped").write_all(data).expect("writing to md5sum");
    let out = child.wait_with_output().expect("md5sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned()
}

/// An e2fsprogs tool (installed in /sbin, which a user's PATH may lack).
fn e2fsprogs(tool: &str) -> Command {
    let path = Path::new("/sbin").join(tool);
    assert!(path.is_file(), "{} is missing\n  fix: sudo apt-get install -y e2fsprogs", path.display());
    Command::new(path)
}

/// What every Linux boot of the scenario shows: the ext4 chain loaded, xvda on blkback, no I/O
/// error, a clean poweroff of the guest and of the machine.
#[track_caller]
fn expect_clean_linux_boot(o: &Outcome, mode: &str) {
    o.expect_clean_finish();
    o.expect_in_order(&[
        "[linux] linux-guest: loaded jbd2.ko",
        "[linux] linux-guest: loaded ext4.ko",
        &format!("[linux] linux-guest: mode {mode}"),
        "[linux] *EXT4-fs (xvda): mounted filesystem*",
        &format!("[linux] linux-guest: disk {mode} done"),
        "[linux] linux-guest: powering off",
        "[hv] domain * (linux) shut down: poweroff*",
    ]);
    for bad in ["*insmod * failed*", "*I/O error*", "*EXT4-fs error*", "*FAILED*", "*BUG*", "*Oops*"] {
        o.expect_no_line(&format!("[linux] {bad}"));
    }
}

#[test]
fn linux_writes_ext4_through_blkback_then_linux_and_the_host_read_it_back() {
    let dir = std::env::temp_dir().join(format!("hv-linux-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let write = Scenario::new("linux-disk-write").disks_in(&dir).at_least(Duration::from_secs(120)).run();
    expect_clean_linux_boot(&write, "disk-write");
    let wrote = sums(&write, "wrote");
    assert_eq!(wrote.keys().map(String::as_str).collect::<Vec<_>>(), FILES, "the files boot 1 wrote");
    assert_eq!(wrote["seq.txt"], md5(&seq_txt()), "Linux wrote seq.txt as `seq 1 200000`");

    let verify = Scenario::new("linux-disk-verify").disks_in(&dir).at_least(Duration::from_secs(120)).run();
    expect_clean_linux_boot(&verify, "disk-verify");
    verify.expect_no_line("[linux] linux-guest: MISMATCH*");
    assert_eq!(sums(&verify, "verified"), wrote, "boot 2 read what boot 1 wrote");

    let image = dir.join("disk0.img");
    let fsck = e2fsprogs("e2fsck").arg("-fn").arg(&image).output().expect("running e2fsck");
    assert!(
        fsck.status.success(),
        "e2fsck -fn {} exited with {}:\n{}{}",
        image.display(),
        fsck.status,
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    for name in FILES {
        let out = e2fsprogs("debugfs").arg("-R").arg(format!("cat /{name}")).arg(&image).output().expect("debugfs");
        assert!(out.status.success(), "debugfs cat /{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(md5(&out.stdout), wrote[name], "debugfs reads /{name} as Linux wrote it");
        if name == "seq.txt" {
            assert!(out.stdout == seq_txt(), "debugfs reads seq.txt byte for byte");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
