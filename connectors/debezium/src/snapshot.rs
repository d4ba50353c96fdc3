//! Debezium's snapshot markers (`source.snapshot`) for a snapshot read over several connections or tasks, shared by
//! the PostgreSQL and MariaDB/MySQL CDC connectors.

use std::collections::{HashMap, HashSet};

use crate::source::SnapshotMarker;

/// Gives snapshot records their markers in the order they are emitted, whatever connection read them: the first
/// record emitted is `first`, the last `last` (with `last_snapshot_record` in its offset), and within a table the
/// first and last emitted are `first_in_data_collection` / `last_in_data_collection`, as Debezium's markers read in
/// a single-threaded snapshot. To know which record is a table's last, each table's latest record is held back
/// until the next one of that table arrives or the table is done; a done table's last record waits for the next
/// record of any table (or the end), which tells whether it is the very last.
#[derive(Debug)]
pub struct MarkerAssigner<T> {
    pending: HashMap<usize, T>,
    /// Last records of done tables, not yet emitted, in the order the tables finished.
    held: Vec<(usize, T)>,
    started: HashSet<usize>,
    emitted: u64,
}

impl<T> Default for MarkerAssigner<T> {
    fn default() -> Self {
        MarkerAssigner { pending: HashMap::new(), held: Vec::new(), started: Default::default(), emitted: 0 }
    }
}

impl<T> MarkerAssigner<T> {
    fn release(
        &mut self,
        table: usize,
        item: T,
        last_in_table: bool,
        very_last: bool,
        out: &mut Vec<(T, SnapshotMarker)>,
    ) {
        let first_in_table = self.started.insert(table);
        let marker = if very_last {
            SnapshotMarker::Last
        } else if self.emitted == 0 {
            SnapshotMarker::First
        } else if last_in_table {
            SnapshotMarker::LastInDataCollection
        } else if first_in_table {
            SnapshotMarker::FirstInDataCollection
        } else {
            SnapshotMarker::True
        };
        self.emitted += 1;
        out.push((item, marker));
    }

    /// Records of `table` read in this order; returns what can be emitted now, with markers.
    pub fn push(&mut self, table: usize, items: Vec<T>) -> Vec<(T, SnapshotMarker)> {
        let mut out = Vec::with_capacity(items.len() + self.held.len() + 1);
        if items.is_empty() {
            return out;
        }
        for (t, item) in std::mem::take(&mut self.held) {
            self.release(t, item, true, false, &mut out);
        }
        if let Some(prev) = self.pending.remove(&table) {
            self.release(table, prev, false, false, &mut out);
        }
        let mut items = items.into_iter();
        let mut last = items.next();
        for item in items {
            if let Some(prev) = last.replace(item) {
                self.release(table, prev, false, false, &mut out);
            }
        }
        if let Some(last) = last {
            self.pending.insert(table, last);
        }
        out
    }

    /// Every chunk of `table` is read.
    pub fn table_done(&mut self, table: usize) {
        if let Some(last) = self.pending.remove(&table) {
            self.held.push((table, last));
        }
    }

    /// Every table is read: the rest, the final one marked `last`.
    pub fn finish(&mut self) -> Vec<(T, SnapshotMarker)> {
        let mut rest: Vec<(usize, T)> = std::mem::take(&mut self.held);
        rest.extend(self.pending.drain());
        let n = rest.len();
        let mut out = Vec::with_capacity(n);
        for (i, (t, item)) in rest.into_iter().enumerate() {
            self.release(t, item, true, i + 1 == n, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SnapshotMarker as M;

    fn run(steps: &[(&str, usize, usize)]) -> Vec<(usize, SnapshotMarker)> {
        // ("rows", table, n) pushes n rows of a table; ("done", table, _) ends a table.
        let mut a = MarkerAssigner::default();
        let mut out = Vec::new();
        let mut next = 0usize;
        for (what, table, n) in steps {
            match *what {
                "rows" => {
                    let items: Vec<usize> = (next..next + n).collect();
                    next += n;
                    out.extend(a.push(*table, items));
                }
                _ => a.table_done(*table),
            }
        }
        out.extend(a.finish());
        out
    }

    #[test]
    fn single_threaded_order_keeps_debeziums_markers() {
        let got = run(&[("rows", 0, 2), ("rows", 0, 1), ("done", 0, 0), ("rows", 1, 2), ("done", 1, 0)]);
        assert_eq!(
            got,
            vec![
                (0, M::First),
                (1, M::True),
                (2, M::LastInDataCollection),
                (3, M::FirstInDataCollection),
                (4, M::Last)
            ]
        );
        // One row in all: `last` (as Debezium's 1-row snapshot).
        assert_eq!(run(&[("rows", 0, 1), ("done", 0, 0)]), vec![(0, M::Last)]);
        // A one-row first table: `first`.
        assert_eq!(
            run(&[("rows", 0, 1), ("done", 0, 0), ("rows", 1, 1), ("done", 1, 0)]),
            vec![(0, M::First), (1, M::Last)]
        );
        // A one-row table in the middle is `last_in_data_collection`, as the single-connection snapshot had it.
        assert_eq!(
            run(&[("rows", 0, 2), ("done", 0, 0), ("rows", 1, 1), ("done", 1, 0), ("rows", 2, 2), ("done", 2, 0)]),
            vec![
                (0, M::First),
                (1, M::LastInDataCollection),
                (2, M::LastInDataCollection),
                (3, M::FirstInDataCollection),
                (4, M::Last)
            ]
        );
        // An empty last table still leaves exactly one `last`.
        assert_eq!(run(&[("rows", 0, 2), ("done", 0, 0), ("done", 1, 0)]), vec![(0, M::First), (1, M::Last)]);
    }

    #[test]
    fn interleaved_tables_get_one_first_and_one_last() {
        let got = run(&[
            ("rows", 0, 2),
            ("rows", 1, 2),
            ("rows", 0, 2),
            ("done", 0, 0),
            ("done", 2, 0),
            ("rows", 1, 1),
            ("done", 1, 0),
        ]);
        let markers: Vec<_> = got.iter().map(|(_, m)| *m).collect();
        assert_eq!(markers.iter().filter(|m| **m == M::First).count(), 1);
        assert_eq!(markers.iter().filter(|m| **m == M::Last).count(), 1);
        assert_eq!(markers[0], M::First);
        assert_eq!(*markers.last().unwrap(), M::Last);
        // Every row once, rows of a table in the order read.
        let mut ids: Vec<_> = got.iter().map(|(i, _)| *i).collect();
        ids.sort();
        assert_eq!(ids, (0..7).collect::<Vec<_>>());
        assert_eq!(
            got,
            vec![
                (0, M::First),
                (2, M::FirstInDataCollection),
                (1, M::True),
                (4, M::True),
                (5, M::LastInDataCollection),
                (3, M::True),
                (6, M::Last),
            ]
        );
    }
}
