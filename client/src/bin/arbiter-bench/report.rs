//! The printed report: what ran, on what machine, the rates and latencies per kind, the ratio
//! against the health-check ceiling, where the CPU went, and every error.

use crate::cli::Args;
use crate::machine::{self, CpuUse};
use crate::spawn::Server;
use crate::stats::{Kind, Phase, Samples, Summary};
use std::time::Duration;

/// The aim: durable decisions at no less than a third of the health-check rate.
const TARGET_RATIO: f64 = 1.0 / 3.0;
/// Cores used by neither the bench nor the server above which the report warns: on a small
/// machine a parallel build easily halves either rate.
const DISTURBED: f64 = 0.1;

/// Prints the report; true when no call failed.
pub(crate) fn print(
    args: &Args,
    endpoint: &str,
    server: Option<&Server>,
    results: &[(Phase, Samples, CpuUse)],
) -> bool {
    let length = args.duration;
    println!(
        "arbiter-bench: {} clients ({} HTTP/2 connections), {} measured per phase after {} warm-up",
        args.clients,
        args.clients,
        humantime::format_duration(length),
        humantime::format_duration(args.warmup),
    );
    match server {
        Some(s) => println!(
            "server: spawned {} at {endpoint}, store in {} (removed at exit)",
            s.bin().display(),
            s.dir().display()
        ),
        None => println!("server: {endpoint}"),
    }
    println!(
        "machine: {} CPUs, {}",
        machine::cpus(),
        machine::cpu_model().unwrap_or_else(|| "unknown CPU".into())
    );
    println!(
        "method: two phases on the same connections, each client in a closed loop: first only \
         health checks (the transport's ceiling), then only decision cycles \
         (create -> refresh until performed -> complete, each change fsynced before its reply)"
    );
    println!();
    println!(
        "{:<16} {:>9} {:>10} {:>9} {:>9} {:>9}",
        "kind", "count", "per s", "p50", "p99", "max"
    );
    let summary = |phase: Phase, kind: Kind| {
        results
            .iter()
            .find(|(p, _, _)| *p == phase)
            .map(|(_, s, _)| s.summary(kind, length))
    };
    let mut rows = Vec::new();
    for kind in Kind::ALL {
        let phase = if kind == Kind::Health {
            Phase::Health
        } else {
            Phase::Cycles
        };
        if let Some(s) = summary(phase, kind) {
            println!("{}", row(kind, &s));
            rows.push((kind, s));
        }
    }
    let rate = |kind: Kind| {
        rows.iter()
            .find(|(k, _)| *k == kind)
            .map_or(0.0, |(_, s)| s.per_second)
    };
    let health = rate(Kind::Health);
    let cycles = rate(Kind::Cycle);
    let writes = rate(Kind::Create) + rate(Kind::Complete);
    println!();
    if health > 0.0 {
        let ratio = cycles / health;
        println!(
            "decision cycles / health checks: {ratio:.3} (aim: >= {TARGET_RATIO:.3}: {})",
            if ratio >= TARGET_RATIO {
                "met"
            } else {
                "NOT met"
            }
        );
        println!(
            "durable writes (create + complete) / health checks: {:.3} ({writes:.0} writes/s)",
            writes / health
        );
    }
    let refreshes = rows
        .iter()
        .find(|(k, _)| *k == Kind::Refresh)
        .map_or(0, |(_, s)| s.count);
    let completed = rows
        .iter()
        .find(|(k, _)| *k == Kind::Cycle)
        .map_or(0, |(_, s)| s.count);
    println!(
        "refreshes: {refreshes} ({:.2} per cycle)",
        refreshes as f64 / completed.max(1) as f64
    );
    println!();
    for (phase, _, cpu) in results {
        println!("cpu, {} phase: {}", phase_name(*phase), cpu_line(cpu));
    }
    let disturbed = results
        .iter()
        .filter_map(|(_, _, cpu)| cpu.rest())
        .fold(0.0, f64::max);
    if disturbed > DISTURBED {
        println!(
            "note: other processes used up to {disturbed:.2} cores while measuring: the figures \
             are disturbed; rerun on a quiet machine"
        );
    }
    let mut ok = true;
    for (phase, samples, _) in results {
        let e = &samples.errors;
        if e.count > 0 {
            ok = false;
            println!("ERRORS, {} phase: {}", phase_name(*phase), e.count);
            for m in &e.examples {
                println!("  {m}");
            }
        }
    }
    if ok {
        println!("errors: none");
    }
    ok
}

fn row(kind: Kind, s: &Summary) -> String {
    format!(
        "{:<16} {:>9} {:>10.1} {:>9} {:>9} {:>9}",
        kind.name(),
        s.count,
        s.per_second,
        latency(s.p50),
        latency(s.p99),
        latency(s.max)
    )
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Health => "health",
        Phase::Cycles => "cycle",
    }
}

/// Shares of one core, e.g. "machine 1.98 of 2 (irq 0.20, steal 0.00): bench 0.80, server
/// 0.75 (writer thread 0.30), the rest 0.23".
fn cpu_line(cpu: &CpuUse) -> String {
    let mut parts = Vec::new();
    if let Some(b) = cpu.bench {
        parts.push(format!("bench {b:.2}"));
    }
    match (cpu.server, cpu.writer) {
        (Some(s), Some(w)) => parts.push(format!("server {s:.2} (writer thread {w:.2})")),
        (Some(s), None) => parts.push(format!("server {s:.2}")),
        _ => {}
    }
    if let Some(rest) = cpu.rest() {
        parts.push(format!("the rest {rest:.2}"));
    }
    let mut line = match cpu.machine {
        Some(m) => format!(
            "machine {m:.2} of {} cores busy (irq {:.2}, steal {:.2})",
            machine::cpus(),
            cpu.irq.unwrap_or(0.0),
            cpu.steal.unwrap_or(0.0)
        ),
        None => "not available".into(),
    };
    if !parts.is_empty() {
        line.push_str(": ");
        line.push_str(&parts.join(", "));
    }
    line
}

/// Microseconds below a millisecond, milliseconds with two decimals above.
fn latency(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.0}µs")
    } else {
        format!("{:.2}ms", micros / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_well() {
        assert_eq!(latency(Duration::from_micros(250)), "250µs");
        assert_eq!(latency(Duration::from_micros(1500)), "1.50ms");
    }
}
