//! cgroups: the pure half (issue "Confinement", in progress). Which
//! hierarchies a process sees and where its groups are ([`hierarchy`]),
//! where a job instance's group is (`OWN/jobs/NAME`, [`group_name`]), and
//! how Upstart's cgroup v1 settings read on a v2 system ([`v2`]). Nothing here
//! touches the tree yet: the daemon still refuses every `cgroup` stanza
//! (a job that has one fails to start, saying so), and these are the parts
//! the group manager will be built on, tested without a cgroup tree.

pub mod groups;
pub mod hierarchy;
pub mod limits;
pub mod v2;

/// The name of a job instance's group below `OWN/jobs`: the log files'
/// escaping (`log::name`: each byte outside `[A-Za-z0-9._+,:=-]` as `%XX`,
/// one to one), with `.` escaped too, so that no group can take the name
/// of an interface file (every one, `cgroup.procs`, `memory.max`, holds a
/// `.`); an instance is joined with `@`, which the escaping never leaves.
/// So `web/api` is never a child of `web`, and `a_b` and `a/b` differ.
pub fn group_name(job: &str, instance: &str) -> String {
    let esc = |s: &str| crate::log::escape(s).replace('.', "%2E");
    let name = if instance.is_empty() {
        esc(job)
    } else {
        format!("{}@{}", esc(job), esc(instance))
    };
    // As long as a file name may be.
    crate::log::capped(&name, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_differ_get_groups_that_differ() {
        let names = [
            ("web", ""),
            ("web/api", ""),
            ("web_api", ""),
            ("web", "api"),
            ("web@api", ""),
            ("web%40api", ""),
            ("a.b", ""),
            ("a%2Eb", ""),
            ("cgroup.procs", ""),
        ];
        let groups: std::collections::BTreeSet<String> =
            names.iter().map(|(j, i)| group_name(j, i)).collect();
        assert_eq!(groups.len(), names.len(), "{groups:?}");
        for g in &groups {
            assert!(!g.contains('/') && !g.contains('.'), "{g}");
        }
        assert_eq!(group_name("web", ""), "web");
        assert_eq!(group_name("web/api", ""), "web%2Fapi");
        assert_eq!(group_name("getty", "tty1"), "getty@tty1");
        assert_eq!(group_name("cgroup.procs", ""), "cgroup%2Eprocs");
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let long = "x".repeat(300);
        let g = group_name(&long, "");
        assert!(g.len() <= 255);
        assert_ne!(g, group_name(&format!("{long}y"), ""));
    }
}
