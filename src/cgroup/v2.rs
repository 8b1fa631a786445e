//! Upstart's `cgroup CONTROLLER [NAME] KEY VALUE` settings are cgroup v1
//! file names and values; on a v2 system each is written as its v2
//! counterpart, converted as runc and systemd convert them:
//!
//! | v1 | v2 |
//! |---|---|
//! | `memory.limit_in_bytes` | `memory.max` (`-1`: `max`) |
//! | `memory.soft_limit_in_bytes` | `memory.low` |
//! | `memory.memsw.limit_in_bytes` | `memory.swap.max`, the part above `memory.max` |
//! | `cpu.shares` (2–262144) | `cpu.weight` = 1 + (shares − 2) × 9999 / 262142 |
//! | `cpu.cfs_quota_us`, `cpu.cfs_period_us` | `cpu.max` = `QUOTA PERIOD` (`-1`: `max`) |
//! | `blkio.weight` (10–1000) | `io.weight` = 1 + (weight − 10) × 9999 / 990 |
//! | `pids.max`, `cpuset.cpus`, `cpuset.mems` | the same |
//!
//! A v1 key without a counterpart is refused with its name, never dropped.

/// One job's v1 settings as v2 `(file, value)` pairs, in the order given
/// (`cpu.cfs_quota_us` and `cpu.cfs_period_us` make one `cpu.max`), or
/// why one cannot be.
pub fn settings(v1: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    let get = |key: &str| {
        v1.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| {
        out.retain(|(ok, _)| ok != k);
        out.push((k.to_string(), v));
    };
    for (key, value) in v1 {
        let value = value.trim();
        match key.as_str() {
            "memory.limit_in_bytes" => put("memory.max", bytes(key, value)?),
            "memory.soft_limit_in_bytes" => put("memory.low", bytes(key, value)?),
            "memory.memsw.limit_in_bytes" => {
                let total = bytes(key, value)?;
                let mem = get("memory.limit_in_bytes")
                    .map(|m| bytes("memory.limit_in_bytes", m.trim()))
                    .transpose()?;
                let swap = match (total.as_str(), mem.as_deref()) {
                    ("max", _) => "max".to_string(),
                    (_, None | Some("max")) => {
                        return Err(format!(
                            "{key}: on cgroup v2 swap is limited apart from memory; give memory.limit_in_bytes too"
                        ))
                    }
                    (t, Some(m)) => {
                        let (t, m): (u64, u64) = (t.parse().unwrap_or(0), m.parse().unwrap_or(0));
                        if t < m {
                            return Err(format!(
                                "{key}: {t} is below memory.limit_in_bytes ({m})"
                            ));
                        }
                        (t - m).to_string()
                    }
                };
                put("memory.swap.max", swap);
            }
            "cpu.shares" => {
                let s = number(key, value, 2, 262_144)?;
                put("cpu.weight", (1 + (s - 2) * 9999 / 262_142).to_string());
            }
            "cpu.cfs_quota_us" | "cpu.cfs_period_us" => {
                let quota = get("cpu.cfs_quota_us").unwrap_or("-1").trim();
                let period = get("cpu.cfs_period_us").unwrap_or("100000").trim();
                let period = number("cpu.cfs_period_us", period, 1000, 1_000_000)?;
                let quota = if quota == "-1" {
                    "max".to_string()
                } else {
                    number("cpu.cfs_quota_us", quota, 1000, u64::MAX)?.to_string()
                };
                put("cpu.max", format!("{quota} {period}"));
            }
            "blkio.weight" => {
                let w = number(key, value, 10, 1000)?;
                put("io.weight", (1 + (w - 10) * 9999 / 990).to_string());
            }
            "pids.max" | "cpuset.cpus" | "cpuset.mems" => put(key, value.to_string()),
            _ => {
                return Err(format!(
                    "{key}: a cgroup v1 setting with no cgroup v2 counterpart that upkeep knows"
                ))
            }
        }
    }
    Ok(out)
}

/// A byte count as v2 writes it (`-1` is `max`).
fn bytes(key: &str, value: &str) -> Result<String, String> {
    if value == "-1" || value == "max" {
        return Ok("max".into());
    }
    value
        .parse::<u64>()
        .map(|n| n.to_string())
        .map_err(|_| format!("{key}: not a byte count: {value}"))
}

fn number(key: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{key}: {value} is not a number from {min} to {max}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(pairs: &[(&str, &str)]) -> Result<Vec<(String, String)>, String> {
        let v1: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        settings(&v1)
    }

    fn ok(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        v2(pairs).unwrap()
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn upstarts_memory_limit_is_memory_max() {
        assert_eq!(
            ok(&[("memory.limit_in_bytes", "52428800")]),
            [p("memory.max", "52428800")]
        );
        assert_eq!(
            ok(&[("memory.limit_in_bytes", "-1")]),
            [p("memory.max", "max")]
        );
        assert_eq!(
            ok(&[("memory.soft_limit_in_bytes", "1000")]),
            [p("memory.low", "1000")]
        );
    }

    #[test]
    fn swap_is_what_memsw_allows_above_memory() {
        assert_eq!(
            ok(&[
                ("memory.limit_in_bytes", "100"),
                ("memory.memsw.limit_in_bytes", "250")
            ]),
            [p("memory.max", "100"), p("memory.swap.max", "150")]
        );
        assert!(v2(&[("memory.memsw.limit_in_bytes", "250")]).is_err());
        assert!(v2(&[
            ("memory.limit_in_bytes", "300"),
            ("memory.memsw.limit_in_bytes", "250")
        ])
        .is_err());
    }

    #[test]
    fn cpu_shares_and_quota_convert_as_runc_does() {
        assert_eq!(ok(&[("cpu.shares", "1024")]), [p("cpu.weight", "39")]);
        assert_eq!(ok(&[("cpu.shares", "2")]), [p("cpu.weight", "1")]);
        assert_eq!(ok(&[("cpu.shares", "262144")]), [p("cpu.weight", "10000")]);
        assert_eq!(
            ok(&[
                ("cpu.cfs_quota_us", "50000"),
                ("cpu.cfs_period_us", "100000")
            ]),
            [p("cpu.max", "50000 100000")]
        );
        assert_eq!(
            ok(&[("cpu.cfs_quota_us", "25000")]),
            [p("cpu.max", "25000 100000")]
        );
        assert_eq!(
            ok(&[("cpu.cfs_quota_us", "-1")]),
            [p("cpu.max", "max 100000")]
        );
        assert_eq!(ok(&[("blkio.weight", "500")]), [p("io.weight", "4950")]);
        assert_eq!(ok(&[("pids.max", "64")]), [p("pids.max", "64")]);
    }

    #[test]
    fn what_has_no_counterpart_or_a_bad_value_is_refused_by_name() {
        let e = v2(&[("memory.oom_control", "1")]).unwrap_err();
        assert!(e.starts_with("memory.oom_control: "), "{e}");
        assert!(v2(&[("cpu.shares", "1")])
            .unwrap_err()
            .contains("2 to 262144"));
        assert!(v2(&[("memory.limit_in_bytes", "50M")]).is_err());
    }
}
