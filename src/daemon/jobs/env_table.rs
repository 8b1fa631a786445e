//! The job-environment commands (Upstart 1.13's `list-env`, `get-env`,
//! `set-env`, `unset-env`, `reset-env`) on the two kinds of table:
//!
//! * the global table (`--global`, and every command given outside a job):
//!   the base of every job started afterwards, above upkeep's own
//!   `PATH`/`TERM` and below the job's `env` stanzas and start variables
//!   (`job::env`); `reset-env` empties it. Kept across `re-exec`.
//! * an instance's own (a command given inside a job, without `--global`):
//!   the variables it was started with, which its later processes get (a
//!   pre-start's `set-env` reaches the main process, and every respawn);
//!   `reset-env` returns to what it was started with.

use super::{JobTable, Key};
use crate::control::EnvOp;
use crate::job;

impl JobTable {
    /// Carries out an env command; the answer's `KEY=VALUE` entries.
    pub fn env_command(&mut self, op: EnvOp, instance: Option<Key>) -> Result<Vec<String>, String> {
        match instance {
            None => Ok(global(&mut self.env_base.table, op)?),
            Some(key) => {
                let Some(inst) = self.instances.get_mut(&key) else {
                    return Err(format!("Unknown instance: {}", key.1));
                };
                let started = self
                    .env_started
                    .entry(key.clone())
                    .or_insert_with(|| inst.env.clone());
                match op {
                    EnvOp::List | EnvOp::Get { .. } => {
                        let env = job::env::for_process(
                            inst,
                            Some(crate::conf::ProcessType::Main),
                            &self.env_base,
                        );
                        let table: Vec<(String, String)> = env;
                        read(&table, op)
                    }
                    EnvOp::Reset => {
                        inst.env = started.clone();
                        Ok(Vec::new())
                    }
                    op => {
                        let mut table: Vec<(String, String)> = inst
                            .env
                            .iter()
                            .filter_map(|e| e.split_once('='))
                            .map(|(k, v)| (k.into(), v.into()))
                            .collect();
                        change(&mut table, op)?;
                        inst.env = table.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
                        Ok(Vec::new())
                    }
                }
            }
        }
    }
}

/// An env command on the global table.
fn global(table: &mut Vec<(String, String)>, op: EnvOp) -> Result<Vec<String>, String> {
    match op {
        EnvOp::List | EnvOp::Get { .. } => read(table, op),
        EnvOp::Reset => {
            table.clear();
            Ok(Vec::new())
        }
        op => {
            change(table, op)?;
            Ok(Vec::new())
        }
    }
}

/// `list-env` (sorted) or `get-env NAME`.
fn read(table: &[(String, String)], op: EnvOp) -> Result<Vec<String>, String> {
    match op {
        EnvOp::Get { name } => table
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(k, v)| vec![format!("{k}={v}")])
            .ok_or_else(|| format!("No such variable: {name}")),
        _ => {
            let mut all: Vec<String> = table.iter().map(|(k, v)| format!("{k}={v}")).collect();
            all.sort();
            Ok(all)
        }
    }
}

/// `set-env` or `unset-env`.
fn change(table: &mut Vec<(String, String)>, op: EnvOp) -> Result<(), String> {
    match op {
        EnvOp::Set { var, retain } => {
            let (k, v) = var.split_once('=').ok_or("Env must be KEY=VALUE pairs")?;
            if retain && table.iter().any(|(ek, _)| ek == k) {
                return Ok(());
            }
            table.retain(|(ek, _)| ek != k);
            table.push((k.to_string(), v.to_string()));
            Ok(())
        }
        EnvOp::Unset { name } => {
            let before = table.len();
            table.retain(|(k, _)| *k != name);
            if table.len() == before {
                return Err(format!("No such variable: {name}"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(var: &str, retain: bool) -> EnvOp {
        EnvOp::Set {
            var: var.into(),
            retain,
        }
    }

    #[test]
    fn the_global_table_is_set_read_and_reset() {
        let mut t = Vec::new();
        global(&mut t, set("B=2", false)).unwrap();
        global(&mut t, set("A=1", false)).unwrap();
        global(&mut t, set("A=one", true)).unwrap(); // retained
        assert_eq!(global(&mut t, EnvOp::List).unwrap(), ["A=1", "B=2"]);
        global(&mut t, set("A=x=y", false)).unwrap();
        assert_eq!(
            global(&mut t, EnvOp::Get { name: "A".into() }).unwrap(),
            ["A=x=y"]
        );
        global(&mut t, EnvOp::Unset { name: "B".into() }).unwrap();
        assert_eq!(
            global(&mut t, EnvOp::Unset { name: "B".into() }),
            Err("No such variable: B".into())
        );
        assert!(global(&mut t, EnvOp::Get { name: "B".into() }).is_err());
        global(&mut t, EnvOp::Reset).unwrap();
        assert!(t.is_empty());
    }
}
