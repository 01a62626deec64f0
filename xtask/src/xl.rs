//! `cargo xtask xl <verb>`: Xen's `xl` surface against a running system, through the
//! control-channel client ([`xtask::control::Client`]).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hv_control::{DomRef, DomainRow, Request, Response, State, Totals};
use serde_json::json;
use xtask::control::{Client, create_request, dom_ref};
use xtask::paths::Paths;

#[derive(clap::Args)]
pub struct XlArgs {
    /// The control socket of the running system
    #[arg(long, default_value = "target/run/control.sock")]
    socket: PathBuf,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// Domains: Name, ID, Mem (MiB), VCPUs, State, Time (s)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Hypervisor totals: memory, domains, grants, event ports, store nodes
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Create a domain from a config file (a topology [[domain]] table at top level: PV with
    /// image and args, or type = "pvh" with kernel, ramdisk and cmdline naming images of the
    /// running bundle, e.g. "linux" and "linux-initramfs"); waits until its vifs and disks are
    /// Connected
    Create {
        config: PathBuf,
        /// Return once the domain runs, without waiting for its devices to connect
        #[arg(long)]
        no_wait: bool,
    },
    /// A domain's split devices (vif, vbd): backend and both ends' XenbusStates (4 = Connected)
    Devices { dom: String },
    /// Destroy a domain (by name or id)
    Destroy {
        dom: String,
        /// Treat it as a crash: its on_crash policy applies (a restartable driver domain comes back)
        #[arg(long)]
        crash: bool,
    },
    /// Pause a domain
    Pause { dom: String },
    /// Unpause a domain
    Unpause { dom: String },
    /// A domain's recent console output, then a live tail (Ctrl-C to stop)
    Console {
        dom: String,
        /// Print what is kept and exit instead of following
        #[arg(long)]
        once: bool,
    },
}

fn state_letters(s: State) -> &'static str {
    match s {
        State::Running => "r-----",
        State::Blocked => "-b----",
        State::Paused => "--p---",
        State::Dying => "----d-",
    }
}

/// `xl list --json`: one object per domain (CPU time in seconds, one decimal).
fn list_json(rows: &[DomainRow]) -> serde_json::Value {
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "id": r.id,
                "mem": r.memory_mib,
                "state": state_letters(r.state),
                "time": (r.cpu_time_ns as f64 / 1e8).round() / 10.0,
                "restarts": r.restarts,
            })
        })
        .collect();
    serde_json::Value::Array(items)
}

/// `xl info`'s fields: (key, value, unit).
fn info_fields(t: &Totals) -> [(&'static str, u64, &'static str); 10] {
    [
        ("total_memory", t.total_mib, "MiB"),
        ("free_memory", t.free_kib / 1024, "MiB"),
        ("free_memory_kib", t.free_kib, "KiB"),
        ("nr_domains", t.domains as u64, ""),
        ("grant_entries", t.grant_entries, ""),
        ("grant_maps", t.grant_maps, ""),
        ("event_ports", t.event_ports, ""),
        ("store_nodes", t.store_nodes, ""),
        ("store_watches", t.store_watches, ""),
        ("store_bytes", t.store_bytes, ""),
    ]
}

pub fn run(paths: &Paths, args: XlArgs) -> Result<()> {
    let socket = if args.socket.is_absolute() { args.socket.clone() } else { paths.root.join(&args.socket) };
    let mut c = Client::connect(&socket)?;
    match args.verb {
        Verb::List { json } => {
            let rows = c.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list_json(&rows))?);
            } else {
                println!("{:<32} {:>5} {:>5} {:>5} {:>9} {:>10}", "Name", "ID", "Mem", "VCPUs", "State", "Time(s)");
                for r in rows {
                    println!(
                        "{:<32} {:>5} {:>5} {:>5} {:>9} {:>10.1}",
                        r.name,
                        r.id,
                        r.memory_mib,
                        1,
                        state_letters(r.state),
                        r.cpu_time_ns as f64 / 1e9
                    );
                }
            }
        }
        Verb::Info { json } => {
            let fields = info_fields(&c.info()?);
            if json {
                let map: serde_json::Map<String, serde_json::Value> =
                    fields.iter().map(|(k, v, _)| ((*k).to_owned(), json!(v))).collect();
                println!("{}", serde_json::Value::Object(map));
            } else {
                for (k, v, unit) in fields {
                    println!("{k:<20}: {v}{}{unit}", if unit.is_empty() { "" } else { " " });
                }
            }
        }
        Verb::Create { config, no_wait } => {
            let Request::Create(spec) = create_request(&config)? else { unreachable!("create_request makes a Create") };
            let (name, devices) = (spec.name.clone(), spec.vifs.len() + spec.disks.len());
            let t0 = Instant::now();
            let id = c.create(spec)?;
            println!("created {name} as domain {id} ({:.1} ms)", t0.elapsed().as_secs_f64() * 1e3);
            if !no_wait && devices > 0 {
                let after = c.wait_connected(DomRef::Id(id), Duration::from_secs(30))?;
                println!("{devices} devices connected {:.1} ms after create (Dom0's clock)", after.as_secs_f64() * 1e3);
            }
        }
        Verb::Devices { dom } => {
            let (rows, _) = c.devices(dom_ref(&dom))?;
            println!(
                "{:<6} {:>5} {:<16} {:>5} {:>8} {:>8}",
                "Kind", "Index", "Backend", "BE-ID", "FE-state", "BE-state"
            );
            for r in rows {
                let be_id = r.backend_id.map_or("-".to_string(), |id| id.to_string());
                println!(
                    "{:<6} {:>5} {:<16} {:>5} {:>8} {:>8}",
                    r.kind, r.index, r.backend, be_id, r.frontend_state, r.backend_state
                );
            }
        }
        Verb::Destroy { dom, crash } => {
            c.ok(&Request::Destroy { dom: dom_ref(&dom), crash })?;
        }
        Verb::Pause { dom } => {
            c.ok(&Request::Pause(dom_ref(&dom)))?;
        }
        Verb::Unpause { dom } => {
            c.ok(&Request::Unpause(dom_ref(&dom)))?;
        }
        Verb::Console { dom, once } => {
            let d = dom_ref(&dom);
            let mut from = 0;
            let mut out = std::io::stdout();
            loop {
                let Response::Console { start, data, end } = c.ok(&Request::Console { dom: d.clone(), from })? else {
                    bail!("unexpected answer to console")
                };
                if start > from && from != 0 {
                    writeln!(out, "[... {} bytes of output no longer kept ...]", start - from)?;
                }
                out.write_all(&terminal_safe(&data))?;
                out.flush()?;
                from = start + data.len() as u64;
                if once && from >= end {
                    return Ok(());
                }
                if from >= end {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
    Ok(())
}

/// A domain's raw console bytes as the terminal may see them, by the rule the hypervisor's
/// serial console applies (`hv-core/src/console.rs`): printable ASCII and newlines pass, a tab
/// becomes a space, a carriage return is dropped, and every other byte (ESC and the other
/// control characters, non-ASCII) becomes `?`, so a hostile domain cannot drive the user's
/// terminal through `xl console`.
pub fn terminal_safe(data: &[u8]) -> Vec<u8> {
    data.iter()
        .filter(|&&b| b != b'\r')
        .map(|&b| match b {
            b'\n' | 0x20..=0x7e => b,
            b'\t' => b' ',
            _ => b'?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_bytes_cannot_drive_the_terminal() {
        // Clear screen, cursor moves, a bell, an OSC title and a carriage return that would
        // overwrite a line: all neutralised; text, tabs and newlines survive.
        let hostile = b"ok\x1b[2J\x1b[H\x07\x1b]0;pwned\x07line\rX\tend\n\xc3\xa9\x7f";
        assert_eq!(terminal_safe(hostile), b"ok?[2J?[H??]0;pwned?lineX end\n???".to_vec());
        assert!(
            terminal_safe(&(0u8..=255).collect::<Vec<_>>()).iter().all(|&b| b == b'\n' || (0x20..=0x7e).contains(&b))
        );
    }

    #[test]
    fn list_json_keeps_its_shape() {
        let rows = [DomainRow {
            name: "we\"b".into(),
            id: 6,
            memory_mib: 8,
            state: State::Blocked,
            cpu_time_ns: 1_260_000_000,
            restarts: 1,
        }];
        let v = list_json(&rows);
        assert_eq!(v, json!([{"name": "we\"b", "id": 6, "mem": 8, "state": "-b----", "time": 1.3, "restarts": 1}]));
    }
}
