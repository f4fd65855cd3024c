//! [`ParallelLoader`]: [`load_dump`] behind the restore orchestration's
//! [`Loader`](crate::restore::database::Loader) trait, so `rewind restore` can use it in
//! place of GitLab's psql pipeline.

use std::io::BufReader;

use super::{load_dump, LoadError, LoadOptions};
use crate::progress::{Cancel, Event, Phase, Sink};
use crate::restore::database::{LoadInput, LoadOutcome, Loader};
use crate::restore::verify::TableRows;

/// The parallel loader.
#[derive(Debug, Clone)]
pub struct ParallelLoader {
    /// `maintenance_work_mem` for index builds (only ever raised); `None`: the server's.
    pub maintenance_work_mem: Option<String>,
}

impl Default for ParallelLoader {
    fn default() -> Self {
        ParallelLoader {
            maintenance_work_mem: Some("256MB".into()),
        }
    }
}

/// Rewrites data progress in compressed bytes of the member (what the caller can size).
struct CompressedProgress<'a> {
    inner: &'a dyn Sink,
    read: &'a (dyn Fn() -> u64 + Send + Sync),
    total: u64,
}

impl Sink for CompressedProgress<'_> {
    fn event(&self, event: Event) {
        match event {
            Event::Progress {
                phase: Phase::Data,
                current,
                rows,
                ..
            } => self.inner.event(Event::Progress {
                phase: Phase::Data,
                done: (self.read)(),
                total: Some(self.total),
                current,
                rows,
            }),
            other => self.inner.event(other),
        }
    }
}

impl Loader for ParallelLoader {
    fn load(
        &self,
        input: LoadInput<'_>,
        sink: &dyn Sink,
        cancel: &Cancel,
    ) -> Result<LoadOutcome, String> {
        let mut opts = LoadOptions::new(input.spec.clone());
        opts.jobs = input.jobs.max(1);
        opts.continue_on_error = input.continue_on_error;
        opts.cancel = cancel.clone();
        opts.maintenance_work_mem = self.maintenance_work_mem.clone();
        let read = input.dump.compressed_read.clone();
        let progress = CompressedProgress {
            inner: sink,
            read: read.as_ref(),
            total: input.dump.compressed_size,
        };
        let reader = BufReader::with_capacity(1 << 20, input.dump.reader);
        let report = load_dump(reader, &opts, &progress).map_err(|e| match e {
            LoadError::Parse(p) => format!("{}: {p}", input.member),
            other => format!("{}: {other}", input.member),
        })?;
        Ok(LoadOutcome {
            loader: "parallel".into(),
            tables: report
                .tables
                .iter()
                .map(|t| TableRows {
                    schema: t.table.schema.clone().unwrap_or_else(|| "public".into()),
                    table: t.table.name.clone(),
                    rows: t.rows,
                })
                .collect(),
            errors: report.failed.iter().map(|e| e.to_string()).collect(),
            ignored: report.ignored.iter().map(|e| e.to_string()).collect(),
            bytes: report.bytes,
            seconds: report.seconds,
        })
    }
}
