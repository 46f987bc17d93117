//! The processes exec'd into one container, by exec id: running ones are
//! unique and bounded; finished ones are remembered (bounded too) so a
//! late `Wait` still gets their status.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use anyhow::{bail, Result};

use super::exit_cell::ExitCell;
use super::tty::PtyRelay;

/// Most processes exec'd into one container that run at once.
pub const MAX_RUNNING_EXECS: usize = 64;
/// Most finished exec'd processes remembered per container (the oldest
/// are forgotten first).
pub const MAX_FINISHED_EXECS: usize = 64;

/// One exec'd process.
#[derive(Debug)]
pub struct ExecRecord {
    /// Its pid in the guest.
    pub pid: i32,
    /// The reaper reported its exit (its pid may be reused: never signal it).
    pub exited: bool,
    /// Its outcome, shared with `Wait`ers (set once its terminal output,
    /// if any, is relayed).
    pub exit: Arc<ExitCell>,
    /// The pty relay of a terminal exec.
    pub tty: Option<Arc<PtyRelay>>,
    /// Tells this record from a later one with the same exec id.
    generation: u64,
}

impl ExecRecord {
    /// Still running, or exited with output still being relayed: its id
    /// is taken.
    pub fn is_live(&self) -> bool {
        self.exit.get().is_none()
    }
}

/// The exec'd processes of one container.
#[derive(Debug, Default)]
pub struct ExecTable {
    records: HashMap<String, ExecRecord>,
    /// Finished execs, oldest first: (exec id, generation).
    finished: VecDeque<(String, u64)>,
    next_generation: u64,
}

impl ExecTable {
    /// Can `exec_id` start now? Refuses an id in use by a live exec and a
    /// container that already runs [`MAX_RUNNING_EXECS`].
    pub fn check_new(&self, exec_id: &str) -> Result<()> {
        if self.records.get(exec_id).is_some_and(ExecRecord::is_live) {
            bail!("exec_id: {exec_id:?} is already running in this container");
        }
        let live = self.records.values().filter(|r| r.is_live()).count();
        if live >= MAX_RUNNING_EXECS {
            bail!("this container already runs {MAX_RUNNING_EXECS} exec'd processes");
        }
        Ok(())
    }

    /// Records a started exec (replacing a finished one with the same id);
    /// returns its generation, for [`mark_exited`](Self::mark_exited) and
    /// [`finished`](Self::finished).
    pub fn insert(
        &mut self,
        exec_id: &str,
        pid: i32,
        exit: Arc<ExitCell>,
        tty: Option<Arc<PtyRelay>>,
    ) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.records.insert(
            exec_id.to_owned(),
            ExecRecord {
                pid,
                exited: false,
                exit,
                tty,
                generation,
            },
        );
        generation
    }

    /// The record of `exec_id`.
    pub fn get(&self, exec_id: &str) -> Option<&ExecRecord> {
        self.records.get(exec_id)
    }

    /// Every live record (to kill them at shutdown).
    pub fn live(&self) -> impl Iterator<Item = &ExecRecord> {
        self.records.values().filter(|r| r.is_live())
    }

    /// The reaper reported the exit of `exec_id`'s `generation`.
    pub fn mark_exited(&mut self, exec_id: &str, generation: u64) {
        if let Some(record) = self.records.get_mut(exec_id) {
            if record.generation == generation {
                record.exited = true;
            }
        }
    }

    /// `exec_id`'s `generation` has its outcome: remember it, forgetting
    /// the oldest finished record beyond [`MAX_FINISHED_EXECS`].
    pub fn finished(&mut self, exec_id: &str, generation: u64) {
        self.finished.push_back((exec_id.to_owned(), generation));
        while self.finished.len() > MAX_FINISHED_EXECS {
            let Some((old_id, old_generation)) = self.finished.pop_front() else {
                break;
            };
            let same = self
                .records
                .get(&old_id)
                .is_some_and(|r| r.generation == old_generation);
            if same {
                self.records.remove(&old_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use vmrun_protocol::ExitStatus;

    use super::*;

    fn done(table: &mut ExecTable, id: &str, generation: u64) {
        let cell = Arc::clone(&table.get(id).unwrap().exit);
        table.mark_exited(id, generation);
        cell.set(Ok(ExitStatus::Code(0)));
        table.finished(id, generation);
    }

    #[test]
    fn live_ids_are_unique_finished_ones_reusable() {
        let mut table = ExecTable::default();
        table.check_new("e").unwrap();
        let first = table.insert("e", 10, Arc::default(), None);
        let err = table.check_new("e").unwrap_err().to_string();
        assert!(err.starts_with("exec_id:"), "{err}");
        done(&mut table, "e", first);
        assert!(table.get("e").unwrap().exited);
        table.check_new("e").unwrap();
        let second = table.insert("e", 11, Arc::default(), None);
        // A late report about the first one does not touch the second.
        table.mark_exited("e", first);
        assert!(!table.get("e").unwrap().exited);
        assert_eq!(table.get("e").unwrap().pid, 11);
        assert_ne!(first, second);
    }

    #[test]
    fn running_execs_are_bounded() {
        let mut table = ExecTable::default();
        for n in 0..MAX_RUNNING_EXECS {
            table.insert(&format!("e{n}"), n as i32, Arc::default(), None);
        }
        assert!(table.check_new("one-more").is_err());
        assert_eq!(table.live().count(), MAX_RUNNING_EXECS);
        done(&mut table, "e0", 0);
        table.check_new("one-more").unwrap();
    }

    #[test]
    fn finished_execs_are_forgotten_oldest_first() {
        let mut table = ExecTable::default();
        for n in 0..=MAX_FINISHED_EXECS {
            let id = format!("e{n}");
            let generation = table.insert(&id, n as i32, Arc::default(), None);
            done(&mut table, &id, generation);
        }
        assert!(table.get("e0").is_none());
        assert!(table.get("e1").is_some());
        assert!(table.get(&format!("e{MAX_FINISHED_EXECS}")).is_some());
    }
}
