//! What a job's cgroup stanzas and direct limits ask of the tree, as a
//! [`Plan`]: which groups below the instance's own to make, in which
//! hierarchy, what to write in each, and which group the processes join.
//! Pure: the tree's shape ([`Tree`]) is an input; the group manager
//! (`groups.rs`) carries the plan out and turns a missing file into a
//! refusal that names the stanza.
//!
//! On a unified system everything is cgroup v2: Upstart's v1 keys are
//! converted ([`super::v2`]), and since a process is in one v2 group, all
//! of a job's `cgroup` stanzas must name the same group. On a hybrid
//! system (v1 controllers beside a v2 tree without them) the v2 tree holds
//! the instance's group for membership and kills, and each controller's
//! settings go to its v1 hierarchy, with Upstart's keys as they are.

use crate::conf::{CgroupLimits, JobClass, DEFAULT_CGROUP_NAME};

/// The shape of the cgroup tree the daemon manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    /// cgroup v2 only; the controllers enabled for the daemon's jobs.
    Unified { controllers: Vec<String> },
    /// v1 controllers (their names) beside a v2 tree used for membership.
    Hybrid { v1: Vec<String> },
}

/// One file to write, and the stanza that asked for it (for refusals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub file: String,
    pub value: String,
    pub from: String,
}

/// One group to make and join: in the v2 tree (`controller` `None`) or in
/// a v1 controller's hierarchy, at `path` below the instance's group
/// (`""`: the instance's group itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub controller: Option<String>,
    pub path: String,
    pub writes: Vec<Write>,
}

/// What the tree must hold before a job's process may run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The v2 group first, then the v1 groups, one a controller.
    pub groups: Vec<Group>,
}

/// Whether a job asks anything of cgroups beyond a group of its own.
pub fn asks(class: &JobClass) -> bool {
    !class.cgroups.is_empty() || class.cgroup_limits.any()
}

/// The memory limit a job sets, in bytes (`memory max`, or Upstart's
/// `memory.limit_in_bytes`), for the OOM report.
pub fn memory_max(class: &JobClass) -> Option<u64> {
    class.cgroup_limits.memory_max.or_else(|| {
        class
            .cgroups
            .iter()
            .filter(|c| c.controller == "memory")
            .flat_map(|c| &c.settings)
            .filter(|(k, _)| full_key("memory", k) == "memory.limit_in_bytes")
            .find_map(|(_, v)| v.trim().parse().ok())
    })
}

/// The plan for one instance of `class`, whose environment is `env`
/// (`KEY=VALUE`, for the names' variables), on `tree`; or why the job
/// cannot start, naming the stanza.
pub fn plan(class: &JobClass, env: &[String], tree: &Tree) -> Result<Plan, String> {
    let mut p = Plan::default();
    let mut v2 = Group {
        controller: None,
        path: String::new(),
        writes: Vec::new(),
    };
    match tree {
        Tree::Unified { controllers } => {
            let mut name: Option<(String, String)> = None;
            let mut v1_settings = Vec::new();
            for c in &class.cgroups {
                let path = group_path(&c.name, env).map_err(|e| format!("cgroup {e}"))?;
                match &name {
                    Some((n, first)) if *n != path => {
                        return Err(format!(
                            "cgroup {} {}: cgroup v2 puts a process in one group, and cgroup {first} names another",
                            c.controller, c.name
                        ))
                    }
                    _ => name = Some((path, format!("{} {}", c.controller, c.name))),
                }
                for (k, v) in &c.settings {
                    v1_settings.push((full_key(&c.controller, k), v.clone()));
                }
            }
            if let Some((path, _)) = name {
                v2.path = path;
            }
            let from_upstart =
                super::v2::settings(&v1_settings).map_err(|e| format!("cgroup {e}"))?;
            for (file, value) in from_upstart {
                let from = format!("cgroup {}", file.split('.').next().unwrap_or(""));
                v2.writes.push(Write { file, value, from });
            }
            v2.writes.extend(direct_v2(&class.cgroup_limits));
            for w in &v2.writes {
                let ctrl = w.file.split('.').next().unwrap_or("");
                if !controllers.iter().any(|c| c == ctrl) {
                    return Err(format!(
                        "{}: the {ctrl} controller is not available to this daemon's groups",
                        w.from
                    ));
                }
            }
            p.groups.push(v2);
        }
        Tree::Hybrid { v1 } => {
            p.groups.push(v2);
            for c in &class.cgroups {
                if !v1.contains(&c.controller) {
                    return Err(format!(
                        "cgroup {}: this system has no {} controller",
                        c.controller, c.controller
                    ));
                }
                let path = group_path(&c.name, env).map_err(|e| format!("cgroup {e}"))?;
                let writes = c
                    .settings
                    .iter()
                    .map(|(k, v)| Write {
                        file: full_key(&c.controller, k),
                        value: v.clone(),
                        from: format!("cgroup {} {k}", c.controller),
                    })
                    .collect();
                merge(&mut p.groups, &c.controller, path, writes)?;
            }
            for (ctrl, write) in direct_v1(&class.cgroup_limits)? {
                if !v1.contains(&ctrl) {
                    return Err(format!(
                        "{}: this system has no {ctrl} controller",
                        write.from
                    ));
                }
                merge(&mut p.groups, &ctrl, String::new(), vec![write])?;
            }
        }
    }
    Ok(p)
}

/// Adds writes to a controller's v1 group; a controller's processes are in
/// one group of its hierarchy.
fn merge(
    groups: &mut Vec<Group>,
    ctrl: &str,
    path: String,
    writes: Vec<Write>,
) -> Result<(), String> {
    match groups.iter_mut().find(|g| g.controller.as_deref() == Some(ctrl)) {
        Some(g) if g.path != path => Err(format!(
            "cgroup {ctrl}: a process is in one group of a controller, and two are named ({:?} and {:?})",
            g.path, path
        )),
        Some(g) => {
            g.writes.extend(writes);
            Ok(())
        }
        None => {
            groups.push(Group {
                controller: Some(ctrl.to_string()),
                path,
                writes,
            });
            Ok(())
        }
    }
}

/// `limit_in_bytes` under `memory` is `memory.limit_in_bytes`.
fn full_key(controller: &str, key: &str) -> String {
    if key.starts_with(&format!("{controller}.")) {
        key.to_string()
    } else {
        format!("{controller}.{key}")
    }
}

/// The direct limits as v2 files.
fn direct_v2(l: &CgroupLimits) -> Vec<Write> {
    let mut out = Vec::new();
    let mut w = |file: &str, value: String, from: String| {
        out.push(Write {
            file: file.into(),
            value,
            from,
        })
    };
    if let Some(b) = l.memory_max {
        w(
            "memory.max",
            b.to_string(),
            format!("memory max {}", size_text(b)),
        );
    }
    if let Some(b) = l.memory_high {
        w(
            "memory.high",
            b.to_string(),
            format!("memory high {}", size_text(b)),
        );
    }
    if let Some(p) = l.cpu_quota_percent {
        w(
            "cpu.max",
            format!("{} 100000", u64::from(p) * 1000),
            format!("cpu quota {p}%"),
        );
    }
    if let Some(n) = l.cpu_weight {
        w("cpu.weight", n.to_string(), format!("cpu weight {n}"));
    }
    if let Some(n) = l.tasks_max {
        w("pids.max", n.to_string(), format!("tasks max {n}"));
    }
    if let Some(n) = l.io_weight {
        w("io.weight", n.to_string(), format!("io weight {n}"));
    }
    out
}

/// The direct limits as v1 files, by controller; `memory high` has no v1
/// counterpart and is refused.
fn direct_v1(l: &CgroupLimits) -> Result<Vec<(String, Write)>, String> {
    let mut out = Vec::new();
    let mut w = |ctrl: &str, file: &str, value: String, from: String| {
        out.push((
            ctrl.to_string(),
            Write {
                file: file.into(),
                value,
                from,
            },
        ))
    };
    if let Some(b) = l.memory_high {
        return Err(format!(
            "memory high {}: this system's memory controller is cgroup v1, which has no memory.high (memory max works)",
            size_text(b)
        ));
    }
    if let Some(b) = l.memory_max {
        let from = format!("memory max {}", size_text(b));
        w("memory", "memory.limit_in_bytes", b.to_string(), from);
    }
    if let Some(p) = l.cpu_quota_percent {
        let from = format!("cpu quota {p}%");
        w("cpu", "cpu.cfs_period_us", "100000".into(), from.clone());
        w(
            "cpu",
            "cpu.cfs_quota_us",
            (u64::from(p) * 1000).to_string(),
            from,
        );
    }
    if let Some(n) = l.cpu_weight {
        // As systemd maps CPUWeight= to CPUShares=: each default to the
        // other (100 to 1024), in proportion.
        let shares = (u64::from(n) * 1024 / 100).clamp(2, 262_144);
        w(
            "cpu",
            "cpu.shares",
            shares.to_string(),
            format!("cpu weight {n}"),
        );
    }
    if let Some(n) = l.tasks_max {
        w("pids", "pids.max", n.to_string(), format!("tasks max {n}"));
    }
    if let Some(n) = l.io_weight {
        let weight = 10 + (u64::from(n) - 1) * 990 / 9999;
        w(
            "blkio",
            "blkio.weight",
            weight.to_string(),
            format!("io weight {n}"),
        );
    }
    Ok(out)
}

/// A `cgroup` stanza's NAME as a path below the instance's group: its
/// variables expanded (`$UPSTART_CGROUP` is the instance's group itself,
/// `""`), each `/`-separated part escaped like a group name, so no part
/// is `..`, `.` or an interface file's name.
pub fn group_path(name: &str, env: &[String]) -> Result<String, String> {
    let mut env = env.to_vec();
    env.push("UPSTART_CGROUP=".into());
    let expanded = crate::event::expand::expand(name, &env).map_err(|e| format!("{name}: {e}"))?;
    let parts: Vec<String> = expanded
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| super::group_name(p, ""))
        .collect();
    if name != DEFAULT_CGROUP_NAME && parts.len() > 8 {
        return Err(format!("{name}: more than 8 levels"));
    }
    Ok(parts.join("/"))
}

/// Bytes for people: `50 MiB`, `1 GiB`, `1000 bytes`.
pub fn size_text(b: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if b >= 1 << shift && b.is_multiple_of(1 << shift) {
            return format!("{} {unit}", b >> shift);
        }
    }
    format!("{b} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(text: &str) -> JobClass {
        crate::conf::parse_job("j", text.as_bytes()).unwrap()
    }

    fn hybrid() -> Tree {
        Tree::Hybrid {
            v1: ["memory", "cpu", "pids", "blkio"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn unified() -> Tree {
        Tree::Unified {
            controllers: ["memory", "cpu", "pids", "io"].map(String::from).to_vec(),
        }
    }

    #[test]
    fn upstarts_memory_stanza_on_v1_and_v2() {
        let j = job("cgroup memory $UPSTART_CGROUP memory.limit_in_bytes 52428800\n");
        let p = plan(&j, &[], &hybrid()).unwrap();
        assert_eq!(p.groups.len(), 2);
        assert_eq!(p.groups[1].controller.as_deref(), Some("memory"));
        assert_eq!(p.groups[1].path, "");
        assert_eq!(p.groups[1].writes[0].file, "memory.limit_in_bytes");
        assert_eq!(memory_max(&j), Some(52_428_800));
        let p = plan(&j, &[], &unified()).unwrap();
        assert_eq!(p.groups.len(), 1);
        assert_eq!(p.groups[0].writes[0].file, "memory.max");
        assert_eq!(memory_max(&j), Some(52_428_800));
        // Upstart's short key names work too.
        let j = job("cgroup memory limit_in_bytes 1048576\n");
        let p = plan(&j, &[], &hybrid()).unwrap();
        assert_eq!(p.groups[1].writes[0].file, "memory.limit_in_bytes");
    }

    #[test]
    fn direct_limits_in_both_trees() {
        let j = job("memory max 50M\ncpu quota 50%\ncpu weight 100\ntasks max 10\n");
        let p = plan(&j, &[], &unified()).unwrap();
        let files: Vec<(&str, &str)> = p.groups[0]
            .writes
            .iter()
            .map(|w| (w.file.as_str(), w.value.as_str()))
            .collect();
        assert_eq!(
            files,
            [
                ("memory.max", "52428800"),
                ("cpu.max", "50000 100000"),
                ("cpu.weight", "100"),
                ("pids.max", "10")
            ]
        );
        let p = plan(&j, &[], &hybrid()).unwrap();
        let cpu = p
            .groups
            .iter()
            .find(|g| g.controller.as_deref() == Some("cpu"))
            .unwrap();
        let shares = cpu.writes.iter().find(|w| w.file == "cpu.shares").unwrap();
        assert_eq!(shares.value, "1024", "weight 100 is v1's default shares");
        assert_eq!(memory_max(&j), Some(50 << 20));
        assert_eq!(p.groups[1].writes[0].from, "memory max 50 MiB");
    }

    #[test]
    fn what_a_tree_lacks_is_refused_by_name() {
        let e = plan(&job("memory high 1G\n"), &[], &hybrid()).unwrap_err();
        assert!(
            e.starts_with("memory high 1 GiB: ") && e.contains("no memory.high"),
            "{e}"
        );
        let e = plan(&job("cgroup net_cls\n"), &[], &hybrid()).unwrap_err();
        assert_eq!(e, "cgroup net_cls: this system has no net_cls controller");
        let small = Tree::Unified {
            controllers: vec!["memory".into()],
        };
        let e = plan(&job("io weight 50\n"), &[], &small).unwrap_err();
        assert!(e.starts_with("io weight 50: the io controller"), "{e}");
        let e = plan(&job("cgroup memory a\ncgroup cpu b\n"), &[], &unified()).unwrap_err();
        assert!(e.contains("one group"), "{e}");
        let e = plan(
            &job("cgroup memory memory.kmem.limit_in_bytes 5\n"),
            &[],
            &unified(),
        )
        .unwrap_err();
        assert!(e.contains("memory.kmem.limit_in_bytes"), "{e}");
    }

    #[test]
    fn names_stay_below_the_instance() {
        assert_eq!(group_path("$UPSTART_CGROUP", &[]).unwrap(), "");
        assert_eq!(group_path("a/b", &[]).unwrap(), "a/b");
        assert_eq!(group_path("../../x", &[]).unwrap(), "%2E%2E/%2E%2E/x");
        assert_eq!(group_path("memory.max", &[]).unwrap(), "memory%2Emax");
        assert_eq!(group_path("w-$N", &["N=1".into()]).unwrap(), "w-1");
        assert!(group_path("$NOPE", &[]).is_err());
        let p = plan(&job("cgroup memory sub\n"), &[], &hybrid()).unwrap();
        assert_eq!(p.groups[1].path, "sub");
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(size_text(50 << 20), "50 MiB");
        assert_eq!(size_text(1 << 30), "1 GiB");
        assert_eq!(size_text(1000), "1000 bytes");
    }
}
