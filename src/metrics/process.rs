//! The standard process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`), read from `/proc/self` at scrape time. Where `/proc` cannot
//! be read (another OS, a locked-down sandbox) the families are left out rather than made up.

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// What `/proc/self` says about this process.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    start_time_s: f64,
}

/// Registers this scrape's process metrics into `registry`.
pub fn register(registry: &mut Registry) {
    if let Some(s) = sample() {
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds.",
            ConstCounter::new(s.cpu_seconds),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            ConstGauge::new(s.resident_bytes),
        );
        registry.register(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            ConstGauge::new(s.virtual_bytes),
        );
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            ConstGauge::new(s.start_time_s),
        );
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let open = entries.count() as i64;
        registry.register(
            "process_open_fds",
            "Open file descriptors.",
            ConstGauge::new(open),
        );
    }
    if let Some(max) = max_fds() {
        registry.register(
            "process_max_fds",
            "The soft limit on open file descriptors.",
            ConstGauge::new(max),
        );
    }
}

fn sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let system = std::fs::read_to_string("/proc/stat").ok()?;
    // SAFETY: sysconf reads a configuration value; no memory is shared.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    parse(&stat, &system, ticks, page)
}

/// Reads `/proc/self/stat` (fields after the parenthesised command name, which may hold
/// spaces) and `/proc/stat`'s `btime`.
fn parse(stat: &str, system: &str, ticks: i64, page: i64) -> Option<Sample> {
    if ticks <= 0 || page <= 0 {
        return None;
    }
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name: utime is field 14, so index 11 here.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse::<f64>().ok() };
    let boot_s: f64 = system
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let ticks = ticks as f64;
    Some(Sample {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        virtual_bytes: field(23)? as i64,
        resident_bytes: field(24)? as i64 * page,
        start_time_s: boot_s + field(22)? / ticks,
    })
}

fn max_fds() -> Option<i64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then(|| i64::try_from(limit.rlim_cur).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_in_the_name_is_read_by_field() {
        let stat = "4242 (salary sync) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 \
                    1000 123456789 300 18446744073709551615";
        let system = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let s = parse(stat, system, 100, 4096).unwrap_or_else(|| panic!("parsed"));
        assert_eq!(
            s,
            Sample {
                cpu_seconds: 3.0,
                resident_bytes: 300 * 4096,
                virtual_bytes: 123_456_789,
                start_time_s: 1_700_000_010.0,
            }
        );
        assert_eq!(parse("garbage", system, 100, 4096), None);
    }

    #[test]
    fn this_process_is_sampled_on_linux() {
        if cfg!(target_os = "linux") {
            let s = sample().unwrap_or_else(|| panic!("/proc/self is readable here"));
            assert!(
                s.resident_bytes > 0 && s.start_time_s > 1_600_000_000.0,
                "{s:?}"
            );
        }
    }
}
