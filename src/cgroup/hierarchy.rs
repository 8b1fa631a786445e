//! Where this process's cgroups are, read from `/proc/self/mountinfo` and
//! `/proc/self/cgroup` by pure functions: the v2 tree (`cgroup2`, at
//! `/sys/fs/cgroup` on a unified system, at `/sys/fs/cgroup/unified` on a
//! hybrid one) and each v1 controller's mount, with the group the process
//! is in on each. A mount whose root is a group (a container's view) is
//! taken into account: the directory is the mount point plus the group's
//! path below that root.

use std::path::{Path, PathBuf};

/// One mounted hierarchy and this process's group in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// The group of the hierarchy that is the mount's root (`/` unless a
    /// container sees only its own part).
    pub root: String,
    /// This process's group, as `/proc/self/cgroup` says it.
    pub group: Option<String>,
}

impl Mount {
    /// This process's group's directory, when it is below the mount.
    pub fn own_dir(&self) -> Option<PathBuf> {
        let g = self.group.as_deref()?;
        let below = if self.root == "/" {
            g
        } else {
            g.strip_prefix(self.root.as_str())
                .filter(|r| r.is_empty() || r.starts_with('/'))?
        };
        Some(self.point.join(below.trim_start_matches('/')))
    }
}

/// The cgroup hierarchies a process sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchy {
    /// The v2 tree.
    pub unified: Option<Mount>,
    /// The v1 hierarchies, by controller (`memory`, `cpu`, …; a named one
    /// as `name=systemd`).
    pub v1: Vec<(String, Mount)>,
}

impl Hierarchy {
    /// From the text of `/proc/self/mountinfo` and `/proc/self/cgroup`.
    pub fn parse(mountinfo: &str, proc_cgroup: &str) -> Hierarchy {
        // hierarchy id → (controllers, path); "0::/x" is v2's.
        let mut v2_group = None;
        let mut v1_groups: Vec<(Vec<String>, String)> = Vec::new();
        for line in proc_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if id == "0" && ctrls.is_empty() {
                v2_group = Some(path.to_string());
            } else {
                v1_groups.push((
                    ctrls.split(',').map(str::to_string).collect(),
                    path.to_string(),
                ));
            }
        }
        let mut h = Hierarchy::default();
        for line in mountinfo.lines() {
            // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (Some(&root), Some(&point), Some(&fstype)) =
                (left.get(3), left.get(4), right.first())
            else {
                continue;
            };
            let mount = |group: Option<String>| Mount {
                point: PathBuf::from(unescape(point)),
                root: unescape(root),
                group,
            };
            match fstype {
                "cgroup2" => h.unified = Some(mount(v2_group.clone())),
                "cgroup" => {
                    let opts = right.get(2).copied().unwrap_or("");
                    for o in opts.split(',') {
                        let group = v1_groups
                            .iter()
                            .find(|(c, _)| c.iter().any(|c| c == o))
                            .map(|(_, p)| p.clone());
                        if group.is_some() {
                            h.v1.push((o.to_string(), mount(group)));
                        }
                    }
                }
                _ => {}
            }
        }
        h
    }

    /// As this process sees them now (empty where the files cannot be
    /// read).
    pub fn of_this_process() -> Hierarchy {
        let read = |p: &str| std::fs::read_to_string(Path::new(p)).unwrap_or_default();
        Hierarchy::parse(&read("/proc/self/mountinfo"), &read("/proc/self/cgroup"))
    }

    /// The mount of a v1 controller.
    pub fn v1(&self, controller: &str) -> Option<&Mount> {
        self.v1
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, m)| m)
    }
}

/// mountinfo's octal escapes (`\040` for a space) undone.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI's machine: v1 controllers, and a v2 tree without controllers.
    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_GROUPS: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/45c8
1:cpu:/
0::/
";

    #[test]
    fn a_hybrid_tree_has_v2_for_membership_and_v1_controllers() {
        let h = Hierarchy::parse(HYBRID_MOUNTS, HYBRID_GROUPS);
        let u = h.unified.as_ref().unwrap();
        assert_eq!(u.own_dir().unwrap(), Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(
            h.v1("memory").unwrap().own_dir().unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/45c8")
        );
        assert_eq!(
            h.v1("pids").unwrap().own_dir().unwrap(),
            Path::new("/sys/fs/cgroup/pids")
        );
        assert!(h.v1("name=systemd").is_some());
        assert!(h.v1("io").is_none());
    }

    #[test]
    fn a_unified_tree_seen_from_a_container() {
        let mounts = "\
25 20 0:23 /kubepods/pod1/ctr /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw,nsdelegate
";
        let h = Hierarchy::parse(mounts, "0::/kubepods/pod1/ctr/app\n");
        assert_eq!(
            h.unified.unwrap().own_dir().unwrap(),
            Path::new("/sys/fs/cgroup/app")
        );
        assert!(h.v1.is_empty());
        // A group outside the mount's root has no directory here.
        let h = Hierarchy::parse(mounts, "0::/elsewhere\n");
        assert_eq!(h.unified.unwrap().own_dir(), None);
        // A systemd machine: the group below the tree's root.
        let h = Hierarchy::parse(
            "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/system.slice/upkeep.service\n",
        );
        assert_eq!(
            h.unified.unwrap().own_dir().unwrap(),
            Path::new("/sys/fs/cgroup/system.slice/upkeep.service")
        );
    }

    #[test]
    fn no_cgroups_at_all() {
        let h = Hierarchy::parse("22 1 0:5 / /proc rw - proc proc rw\n", "");
        assert_eq!(h, Hierarchy::default());
    }

    #[test]
    fn octal_escapes_are_undone() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/a\\0"), "/a\\0");
    }
}
