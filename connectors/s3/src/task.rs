//! The sink task: per Kafka partition, open files (one per encoded partition) buffered in memory, streamed as
//! multipart parts once a buffer reaches `s3.part.size`, committed (object completed) at rotation; `pre_commit`
//! hands back, per partition, only offsets whose records are in completed objects.
//!
//! A rotation does not stop the partition: its files are handed to an upload in the background (one per
//! partition at a time, in order) while the next records are encoded into new files. The next rotation of the
//! partition, `pre_commit` and the buffer budget wait for it; a failed upload is kept whole and retried before
//! anything newer of the partition is completed, so a partition's objects complete in offset order and the
//! offsets handed back never pass an object that is not in the store.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use rustc_hash::FxHashMap;

use sluice_connect_api::connector::{SinkTask, SinkTaskContext, TopicPartition};
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::record::{Schema, SinkRecord, Value};

use crate::client::{Credentials, S3Client, S3Error, resolve_endpoint};
use crate::format::{Encoded, ObjectWriter, View, view_of};
use crate::layout::object_key;
use crate::{NullBehavior, S3Settings};

/// One object being written: the value object of a file, or its keys / headers object.
#[derive(Debug)]
struct OpenObject {
    key: String,
    writer: ObjectWriter,
    upload_id: Option<String>,
    etags: Vec<String>,
    /// Completed in the store: a commit retried after a failure of a sibling object skips it.
    done: bool,
}

/// The open file of one encoded partition: its value object, then (when stored) its keys and headers objects.
/// Every record goes into all of them (or, if any view of it is invalid, into none), they start at the same
/// offset and are completed together, so the side objects stay aligned with the values across rotation and
/// replay.
#[derive(Debug)]
struct OpenFile {
    start_offset: i64,
    end_offset: i64,
    count: u64,
    objects: Vec<OpenObject>,
    /// Tagged after its objects completed (`s3.object.tagging`): a retried upload does not tag it again.
    tagged: bool,
}

impl OpenFile {
    fn buffered(&self) -> usize {
        self.objects.iter().map(|o| o.writer.buffered()).sum()
    }
    fn key(&self) -> &str {
        self.objects.first().map_or("", |o| o.key.as_str())
    }
}

/// The files of one rotation of a partition, completed in the background.
#[derive(Debug)]
struct Upload {
    /// The lowest start offset of its files: `pre_commit` does not pass it until the upload completed.
    start: i64,
    /// The partition's next offset when it rotated: its `written` once the upload completed.
    next: Option<i64>,
    /// Bytes buffered in its files, counted against the task's buffer budget until it completed.
    bytes: usize,
    state: UploadState,
}

#[derive(Debug)]
enum UploadState {
    Running(tokio::task::JoinHandle<Uploaded>),
    /// Failed: the files as they are (objects already completed are not written again), retried next.
    Failed(Vec<OpenFile>),
}

/// What an upload hands back: its files, the buffer of a single-PUT object for reuse, and how it went.
#[derive(Debug)]
struct Uploaded {
    files: Vec<OpenFile>,
    spare: Option<Vec<u8>>,
    result: Result<(), ConnectError>,
}

#[derive(Debug, Default)]
struct PartitionState {
    files: BTreeMap<String, OpenFile>,
    /// Records in the open files.
    count: u64,
    /// Timestamp (per extractor) of the first record of the open files, for `rotate.interval.ms`.
    base_ts: Option<i64>,
    /// Wall clock of the first record of the open files, for `rotate.schedule.interval.ms`.
    opened: Option<Instant>,
    current_encoded: Option<String>,
    /// Per encoded partition, the value schema (and key schema when keys go to a one-schema format) of its open
    /// file: a change rotates, as Confluent's `schema.compatibility=NONE`.
    schemas: FxHashMap<String, Vec<Option<Arc<Schema>>>>,
    /// The offset after the last record taken.
    next: Option<i64>,
    /// The offset after the last record in a completed object (this task's view).
    written: Option<i64>,
    /// Stale multipart uploads of this partition were aborted.
    cleaned: bool,
    /// The previous rotation, while its upload runs or after it failed.
    upload: Option<Upload>,
    /// A rotation was decided but could not start (the previous upload failed): done before anything else is
    /// appended, so every object holds exactly what it would have held without the failure.
    rotation_pending: bool,
}

impl PartitionState {
    /// Bytes in the open files.
    fn buffered(&self) -> usize {
        self.files.values().map(OpenFile::buffered).sum()
    }
    /// Bytes in the open files and in the upload not completed yet.
    fn held(&self) -> usize {
        self.buffered() + self.upload.as_ref().map_or(0, |u| u.bytes)
    }
    /// The first offset not in a completed object, if records were taken past `written`.
    fn min_start(&self) -> Option<i64> {
        let open = self.files.values().map(|f| f.start_offset).min();
        match (open, self.upload.as_ref().map(|u| u.start)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[derive(Default)]
pub struct S3SinkTask {
    settings: Option<Arc<S3Settings>>,
    client: Option<S3Client>,
    /// Looked up several times per record: FxHash, not SipHash (the keys are ours, not an attacker's).
    partitions: FxHashMap<TopicPartition, PartitionState>,
    /// Buffers of the per-record path, kept from record to record: the encoded partition, the encoded views
    /// (one per view of `settings.views`) and the schemas that rotate a file when they change.
    scratch_partition: String,
    scratch_views: Vec<Encoded>,
    scratch_schemas: Vec<Option<Arc<Schema>>>,
    scratch_view_schemas: Vec<Option<Arc<Schema>>>,
    /// The buffer of the last object uploaded in one PUT, emptied, for the next file: an object of megabytes is
    /// then written without growing a new buffer from nothing (copies and fresh pages). At most one per task.
    spare: Vec<u8>,
}

/// The buffer of a body that went up, back as an empty `Vec` (only if nothing else holds it: never a copy).
fn reclaim(body: Bytes) -> Option<Vec<u8>> {
    let mut buffer = Vec::from(body.try_into_mut().ok()?);
    buffer.clear();
    Some(buffer)
}

/// Whether two lists of schemas are the same (the same `Arc`s nearly always: a pointer comparison first).
fn same_schemas(a: &[Option<Arc<Schema>>], b: &[Option<Arc<Schema>>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => Arc::ptr_eq(x, y) || x == y,
            (None, None) => true,
            _ => false,
        })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Turns an S3 failure into the task's error, naming the bucket and endpoint and what to do.
fn s3_error(client: &S3Client, what: &str, e: S3Error) -> ConnectError {
    let ctx = format!("S3 sink: {what} in bucket {:?} at {}", client.bucket, client.endpoint);
    match e.status() {
        Some(404) if e.code() == "NoSuchBucket" || what.starts_with("checking") => ConnectError::fatal(
            format!(
                "{ctx}: the bucket does not exist; create it (or fix s3.bucket.name / s3.region / store.url) and restart the task"
            ),
            e,
        ),
        Some(403) | Some(401) => ConnectError::fatal(
            format!(
                "{ctx}: access denied; check aws.access.key.id / aws.secret.access.key or the AWS_* environment / profile of the agent, and the bucket's policy"
            ),
            e,
        ),
        Some(400)
            if matches!(e.code(), "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AuthorizationHeaderMalformed") =>
        {
            ConnectError::fatal(format!("{ctx}: credentials refused; check the access key, secret and s3.region"), e)
        }
        Some(s) if s < 500 && s != 408 && s != 429 => ConnectError::fatal(ctx, e),
        None if e.is_tls_trust() => ConnectError::fatal(
            format!(
                "{ctx}: TLS: the server's certificate is not trusted or does not match the host ({}); trust its CA through the system store or AWS_CA_BUNDLE (a PEM file) in the agent's environment, or fix store.url / AWS_ENDPOINT_URL",
                e.chain()
            ),
            e,
        ),
        _ => ConnectError::retriable(
            format!(
                "{ctx}: the endpoint failed or is unreachable; check store.url / AWS_ENDPOINT_URL and that the server runs (retrying)"
            ),
            e,
        ),
    }
}

impl S3SinkTask {
    fn s(&self) -> &S3Settings {
        self.settings.as_ref().expect("started")
    }

    /// Aborts unfinished multipart uploads of this partition's objects (left by a crash).
    async fn clean_stale(&mut self, tp: &TopicPartition) -> Result<(), ConnectError> {
        let s = self.s();
        let client = self.client.as_ref().expect("started");
        let prefix = if s.topics_dir.is_empty() {
            format!("{}{}", tp.topic, s.dir_delim)
        } else {
            format!("{}{}{}{}", s.topics_dir, s.dir_delim, tp.topic, s.dir_delim)
        };
        let name_prefix = format!("{}{}{}{}", tp.topic, s.file_delim, tp.partition, s.file_delim);
        let uploads =
            client.list_multipart(&prefix).await.map_err(|e| s3_error(client, "listing multipart uploads", e))?;
        for (key, id) in uploads {
            let name = key.rsplit(s.dir_delim.as_str()).next().unwrap_or(&key);
            if name.starts_with(&name_prefix) {
                tracing::info!(key, "aborting an unfinished multipart upload");
                client
                    .abort_multipart(&key, &id)
                    .await
                    .map_err(|e| s3_error(client, "aborting a multipart upload", e))?;
            }
        }
        Ok(())
    }

    /// Drops a partition's open files and a failed upload (aborting their multipart uploads): after a rewind.
    async fn reset(&mut self, tp: &TopicPartition) {
        let client = self.client.clone().expect("started");
        if let Some(state) = self.partitions.get_mut(tp) {
            let failed = match state.upload.take().map(|u| u.state) {
                Some(UploadState::Failed(files)) => files,
                Some(UploadState::Running(handle)) => {
                    handle.abort();
                    Vec::new()
                }
                None => Vec::new(),
            };
            for o in state.files.values().chain(&failed).flat_map(|f| f.objects.iter()).filter(|o| !o.done) {
                if let Some(id) = &o.upload_id
                    && let Err(e) = client.abort_multipart(&o.key, id).await
                {
                    tracing::warn!(key = o.key, error = %e, "could not abort a multipart upload");
                }
            }
            let (cleaned, written) = (state.cleaned, state.written);
            *state = PartitionState { cleaned, written, ..PartitionState::default() };
        }
    }

    /// Uploads a part of an object if its ready bytes reached the part size (or it is the last part).
    async fn upload_part(
        client: &S3Client,
        o: &mut OpenObject,
        part_size: usize,
        last: bool,
    ) -> Result<(), ConnectError> {
        if o.writer.ready().len() < part_size && !last {
            return Ok(());
        }
        if o.upload_id.is_none() {
            let id = client
                .create_multipart(&o.key)
                .await
                .map_err(|e| s3_error(client, "starting a multipart upload", e))?;
            o.upload_id = Some(id);
        }
        let id = o.upload_id.clone().unwrap_or_default();
        // Kept (shared, not copied) for a retry.
        let body = Bytes::from(std::mem::take(o.writer.ready()));
        match client.upload_part(&o.key, &id, o.etags.len() as u32 + 1, body.clone()).await {
            Ok(etag) => {
                o.etags.push(etag);
                Ok(())
            }
            Err(e) => {
                *o.writer.ready() = Vec::from(body);
                Err(s3_error(client, &format!("uploading part {} of {}", o.etags.len() + 1, o.key), e))
            }
        }
    }

    /// Completes one object (single PUT if no part went up yet). After a single PUT, its buffer for reuse.
    async fn complete_object(
        client: &S3Client,
        o: &mut OpenObject,
        part_size: usize,
    ) -> Result<Option<Vec<u8>>, ConnectError> {
        if o.done {
            return Ok(None);
        }
        o.writer.finish()?;
        let mut spare = None;
        if o.upload_id.is_none() {
            // Kept (shared, not copied) in case the PUT fails: then the object is whole again for the retry.
            let body = Bytes::from(std::mem::take(o.writer.ready()));
            if let Err(e) = client.put_object(&o.key, body.clone()).await {
                *o.writer.ready() = Vec::from(body);
                return Err(s3_error(client, &format!("writing {}", o.key), e));
            }
            spare = reclaim(body);
        } else {
            if !o.writer.ready().is_empty() {
                Self::upload_part(client, o, part_size, true).await?;
            }
            let id = o.upload_id.clone().unwrap_or_default();
            client
                .complete_multipart(&o.key, &id, &o.etags)
                .await
                .map_err(|e| s3_error(client, &format!("completing {}", o.key), e))?;
        }
        o.writer.ready().clear();
        o.done = true;
        Ok(spare)
    }

    /// Completes the objects of a rotation's files, in order, and tags them (`s3.object.tagging`). Runs in the
    /// background; hands the files back (a failure keeps them for the retry) with a buffer to reuse.
    async fn upload_files(client: S3Client, mut files: Vec<OpenFile>, part_size: usize, tagging: bool) -> Uploaded {
        let mut spare: Option<Vec<u8>> = None;
        for f in &mut files {
            for o in &mut f.objects {
                match Self::complete_object(&client, o, part_size).await {
                    Ok(Some(buffer)) => {
                        if spare.as_ref().is_none_or(|s| buffer.capacity() > s.capacity()) {
                            spare = Some(buffer);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return Uploaded { files, spare, result: Err(e) },
                }
            }
            if tagging && !f.tagged {
                // As TopicPartitionWriter.tagFile: startOffset, endOffset, recordCount.
                let tags = [
                    ("startOffset", f.start_offset.to_string()),
                    ("endOffset", f.end_offset.to_string()),
                    ("recordCount", f.count.to_string()),
                ];
                if let Err(e) = client.put_tags(f.key(), &tags).await {
                    // Confluent logs tagging failures and goes on (the object is written).
                    tracing::warn!(key = f.key(), error = %e, "could not tag the object");
                }
                f.tagged = true;
            }
            tracing::debug!(key = f.key(), records = f.count, "object written");
        }
        Uploaded { files, spare, result: Ok(()) }
    }

    /// Waits for the partition's upload, if one runs or failed (a failed one is retried here, its completed
    /// objects not written again). Once it completed, the partition's `written` moves past it.
    async fn settle(&mut self, tp: &TopicPartition) -> Result<(), ConnectError> {
        let client = self.client.clone().expect("started");
        let (part_size, tagging) = (self.s().part_size, self.s().tagging);
        let Some(state) = self.partitions.get_mut(tp) else { return Ok(()) };
        let Some(upload) = state.upload.as_mut() else { return Ok(()) };
        let done = match &mut upload.state {
            UploadState::Running(handle) => match handle.await {
                Ok(done) => done,
                Err(e) => {
                    // The upload panicked or was aborted: its files are gone, so the partition starts again from
                    // what is committed (the runtime rewinds it on the task's restart).
                    state.upload = None;
                    return Err(ConnectError::Other(format!(
                        "S3 sink: the upload of {}-{} failed: {e}",
                        tp.topic, tp.partition
                    )));
                }
            },
            UploadState::Failed(files) => {
                tracing::info!(topic = tp.topic, partition = tp.partition, "retrying a failed upload");
                Self::upload_files(client, std::mem::take(files), part_size, tagging).await
            }
        };
        if let Some(buffer) = done.spare
            && buffer.capacity() > self.spare.capacity()
        {
            self.spare = buffer;
        }
        match done.result {
            Ok(()) => {
                let next = state.upload.take().and_then(|u| u.next);
                if next.is_some() {
                    state.written = next;
                }
                Ok(())
            }
            Err(e) => {
                upload.state = UploadState::Failed(done.files);
                Err(e)
            }
        }
    }

    /// Settles every upload that has finished, without waiting for the others (errors come out here).
    async fn reap(&mut self) -> Result<(), ConnectError> {
        let finished: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(
                |(_, st)| matches!(&st.upload, Some(Upload { state: UploadState::Running(h), .. }) if h.is_finished()),
            )
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in finished {
            self.settle(&tp).await?;
        }
        Ok(())
    }

    /// Rotation: the partition's open files are handed to an upload in the background, after its previous upload
    /// completed (so objects complete in offset order, and at most one upload per partition holds memory).
    async fn rotate(&mut self, tp: &TopicPartition) -> Result<(), ConnectError> {
        if let Some(state) = self.partitions.get_mut(tp) {
            state.rotation_pending = true;
        }
        self.settle(tp).await?;
        let client = self.client.clone().expect("started");
        let (part_size, tagging) = (self.s().part_size, self.s().tagging);
        let Some(state) = self.partitions.get_mut(tp) else { return Ok(()) };
        if !state.files.is_empty() {
            let files: Vec<OpenFile> = std::mem::take(&mut state.files).into_values().collect();
            let start = files.iter().map(|f| f.start_offset).min().unwrap_or_default();
            let bytes = files.iter().map(OpenFile::buffered).sum();
            let handle = tokio::spawn(Self::upload_files(client, files, part_size, tagging));
            state.upload = Some(Upload { start, next: state.next, bytes, state: UploadState::Running(handle) });
        }
        state.count = 0;
        state.base_ts = None;
        state.opened = None;
        state.current_encoded = None;
        state.schemas.clear();
        state.rotation_pending = false;
        Ok(())
    }

    /// Takes one record of partition `tp`. The per-record path allocates nothing in the steady state: the encoded
    /// partition, the encoded views and the schemas are built in buffers kept by the task, and the open file, its
    /// schemas and the current encoded partition are looked up by reference (allocated only when they change).
    async fn put_one(&mut self, tp: &TopicPartition, r: &SinkRecord) -> Result<(), ConnectError> {
        let s = Arc::clone(self.settings.as_ref().expect("started"));
        if !self.partitions.contains_key(tp) {
            self.partitions.insert(tp.clone(), PartitionState::default());
        }
        let state = self.partitions.get_mut(tp).expect("present");
        // Already in a completed object (a batch put again after a failure past a rotation): skipped, so the
        // next file starts where the written one ended, as before.
        if state.written.is_some_and(|w| r.offset < w) {
            return Ok(());
        }
        let mut rewind = false;
        if let Some(next) = state.next
            && r.offset < next
        {
            match state.min_start() {
                // Part of a batch put again after a failure: already taken.
                Some(min) if r.offset > min => return Ok(()),
                _ => rewind = true,
            }
        }
        let (cleaned, rotation_pending) = (state.cleaned, state.rotation_pending);
        if rewind {
            // An upload still running may complete what is asked for again: then it is skipped as written.
            if matches!(&state.upload, Some(Upload { state: UploadState::Running(_), .. })) {
                if let Err(e) = self.settle(tp).await {
                    tracing::warn!(error = %e.trace(), "an upload failed before a rewind; its records are taken again");
                }
                let state = &self.partitions[tp];
                if state.written.is_some_and(|w| r.offset < w) {
                    return Ok(());
                }
            }
            tracing::info!(
                topic = tp.topic,
                partition = tp.partition,
                offset = r.offset,
                "rewind: the partition's buffer is reset"
            );
            self.reset(tp).await;
        }
        if !cleaned {
            self.clean_stale(tp).await?;
            self.partitions.get_mut(tp).expect("present").cleaned = true;
        }
        if rotation_pending && !rewind {
            self.rotate(tp).await?;
        }
        let tombstone = matches!(r.value, Value::Null);
        if tombstone {
            match s.null_values {
                NullBehavior::Ignore if s.report_nulls => {
                    // S3SinkTask.maybeReportNullRecordToDlq: the errant record reporter gets the record with a
                    // DataException; Sluice's runtime does the same with a record `put` refuses as bad data (DLQ
                    // and error log, or the task fails unless errors.tolerance=all, as the reporter would).
                    return Err(ConnectError::Data("Skipping null value record.".into()));
                }
                NullBehavior::Ignore => {
                    self.partitions.get_mut(tp).expect("present").next = Some(r.offset + 1);
                    return Ok(());
                }
                // Into the tombstone encoded partition, keys (and headers) objects only.
                NullBehavior::Write => {}
                NullBehavior::Fail => {
                    // S3SinkTask.maybeSkipOnNullValue: a ConnectException (not a bad record: it fails the task
                    // whatever errors.tolerance says).
                    return Err(ConnectError::Other(format!(
                        "Null valued records are not writeable with current behavior.on.null.values 'settings. ({}-{}@{}; set behavior.on.null.values=ignore or write)",
                        r.topic, r.partition, r.offset
                    )));
                }
            }
        }
        // The views written for this record: a tombstone's value object is not written (KeyValueHeaderRecord
        // WriterProvider has no value writer in the tombstone partition).
        let active = |view: View| !(tombstone && view == View::Value);
        let needs_ts = s.rotate_interval_ms > 0 || matches!(s.partitioner, crate::layout::Partitioner::Time { .. });
        let ts = if !needs_ts {
            0
        } else if tombstone {
            // TombstoneTimestampExtractor: the record's timestamp for tombstones.
            r.timestamp.unwrap_or_else(now_ms)
        } else {
            s.extractor.extract(r, now_ms())?
        };
        let mut encoded = std::mem::take(&mut self.scratch_partition);
        encoded.clear();
        if tombstone {
            // TombstoneSupportedPartitioner: every tombstone in `tombstone.encoded.partition`.
            encoded.push_str(&s.tombstone_partition);
        } else {
            s.partitioner.encode_into(r, ts, &s.dir_delim, &mut encoded)?;
            if encoded == s.tombstone_partition && s.null_values == NullBehavior::Write {
                // As KeyValueHeaderRecordWriterProvider: the tombstone partition has no value writer.
                return Err(ConnectError::Other(format!(
                    "Value writer not configured for SinkRecord: SinkRecord{{kafkaOffset={}, topic='{}', kafkaPartition={}}}. encoded partition: {encoded}, tombstonePartition: {}",
                    r.offset, r.topic, r.partition, s.tombstone_partition
                )));
            }
        }
        // Every view of the record is checked and encoded before anything is written (Confluent checks the key
        // and headers before the value), so the value, keys and headers objects stay aligned.
        let mut slots = std::mem::take(&mut self.scratch_views);
        slots.resize_with(s.views.len(), || Encoded::Bytes(Vec::new()));
        let mut schemas = std::mem::take(&mut self.scratch_schemas);
        schemas.clear();
        let mut view_schemas = std::mem::take(&mut self.scratch_view_schemas);
        view_schemas.clear();
        for ((view, format), slot) in s.views.iter().zip(slots.iter_mut()) {
            if !active(*view) {
                continue;
            }
            let (schema, value) = view_of(*view, r, format.envelops())?;
            format.encode_view_into(*view, schema.as_deref(), value, r, slot)?;
            if *view == View::Value || format.needs_one_schema() {
                schemas.push(schema.clone());
            }
            view_schemas.push(schema);
        }
        let (rotate_on_time, schema_changed) = {
            let st = &self.partitions[tp];
            // Record-time rotation, as TopicPartitionWriter: the span of timestamps, or a new encoded partition
            // (not between the tombstone partition and another: shouldRotateOnPartitionChangeWithTombstoneCheck).
            let changed_partition = st.current_encoded.as_deref().is_some_and(|current| {
                current != encoded
                    && !(s.null_values == NullBehavior::Write
                        && (current == s.tombstone_partition || encoded == s.tombstone_partition))
            });
            let time = s.rotate_interval_ms > 0
                && st.count > 0
                && (st.base_ts.is_some_and(|b| ts - b >= s.rotate_interval_ms) || changed_partition);
            // schema.compatibility=NONE: any change of the schema of this encoded partition's open file.
            let schema = st.count > 0
                && st.schemas.get(encoded.as_str()).is_some_and(|current| !same_schemas(current, &schemas));
            (time, schema)
        };
        if rotate_on_time || schema_changed {
            if schema_changed {
                tracing::debug!(topic = tp.topic, partition = tp.partition, encoded, "schema change: rotation");
            }
            self.rotate(tp).await?;
        }
        let client = self.client.as_ref().expect("started");
        let st = self.partitions.get_mut(tp).expect("present");
        match st.schemas.get_mut(encoded.as_str()) {
            Some(current) if same_schemas(current, &schemas) => {}
            Some(current) => current.clone_from(&schemas),
            None => {
                st.schemas.insert(encoded.clone(), schemas.clone());
            }
        }
        if !st.files.contains_key(encoded.as_str()) {
            let mut objects = Vec::with_capacity(s.views.len());
            let active_views = s.views.iter().filter(|(view, _)| active(*view));
            for ((view, format), schema) in active_views.zip(&view_schemas) {
                let ext = format!("{}{}", view.infix(), format.extension(s.compression));
                let key = object_key(
                    &s.topics_dir,
                    &s.dir_delim,
                    &s.file_delim,
                    s.pad,
                    &r.topic,
                    &encoded,
                    r.partition,
                    r.offset,
                    &ext,
                );
                let mut writer = format.writer(s.compression, schema.as_deref(), &key)?;
                writer.adopt_buffer(&mut self.spare);
                objects.push(OpenObject { key, writer, upload_id: None, etags: Vec::new(), done: false });
            }
            let file = OpenFile { start_offset: r.offset, end_offset: r.offset, count: 0, objects, tagged: false };
            st.files.insert(encoded.clone(), file);
        }
        let f = st.files.get_mut(encoded.as_str()).expect("present");
        let written = s.views.iter().zip(&slots).filter(|((view, _), _)| active(*view));
        for (o, (_, bytes)) in f.objects.iter_mut().zip(written) {
            o.writer.append(bytes)?;
        }
        f.count += 1;
        f.end_offset = r.offset;
        st.count += 1;
        st.next = Some(r.offset + 1);
        st.base_ts.get_or_insert(ts);
        st.opened.get_or_insert_with(Instant::now);
        if st.current_encoded.as_deref() != Some(encoded.as_str()) {
            st.current_encoded = Some(encoded.clone());
        }
        for o in &mut f.objects {
            Self::upload_part(client, o, s.part_size, false).await?;
        }
        let full = st.count >= s.flush_size;
        self.scratch_partition = encoded;
        self.scratch_views = slots;
        self.scratch_schemas = schemas;
        self.scratch_view_schemas = view_schemas;
        if full {
            self.rotate(tp).await?;
        }
        Ok(())
    }

    /// Past the task's buffer budget (open files and uploads not completed), waits for the largest upload, or
    /// uploads the partition holding the most bytes early.
    async fn enforce_budget(&mut self) -> Result<(), ConnectError> {
        let budget = self.s().buffer_budget;
        loop {
            let total: usize = self.partitions.values().map(PartitionState::held).sum();
            if total <= budget {
                return Ok(());
            }
            let uploading = self
                .partitions
                .iter()
                .filter_map(|(tp, st)| st.upload.as_ref().map(|u| (tp, u.bytes)))
                .max_by_key(|(_, bytes)| *bytes)
                .map(|(tp, _)| tp.clone());
            if let Some(tp) = uploading {
                self.settle(&tp).await?;
                continue;
            }
            let Some(tp) = self.partitions.iter().max_by_key(|(_, st)| st.buffered()).map(|(tp, _)| tp.clone()) else {
                return Ok(());
            };
            tracing::debug!(total, budget, topic = tp.topic, partition = tp.partition, "buffer budget: early rotation");
            self.rotate(&tp).await?;
        }
    }

    async fn scheduled_rotation(&mut self) -> Result<(), ConnectError> {
        let interval = self.s().rotate_schedule_interval_ms;
        if interval <= 0 {
            return Ok(());
        }
        let due: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, st)| {
                st.count > 0 && st.opened.is_some_and(|o| o.elapsed() >= Duration::from_millis(interval as u64))
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in due {
            self.rotate(&tp).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl SinkTask for S3SinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let s = S3Settings::from_config(&context.config)?;
        let endpoint = resolve_endpoint(s.store_url.as_deref(), &s.region);
        let creds = Credentials::resolve(s.access_key.as_deref(), s.secret_key.as_deref()).ok_or_else(|| {
            ConnectError::config(
                "aws.access.key.id",
                format!("no AWS credentials for bucket {:?} at {endpoint}: set aws.access.key.id / aws.secret.access.key, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or ~/.aws/credentials, AWS_PROFILE) in the agent's environment", s.bucket),
            )
        })?;
        let mut client = S3Client::new(endpoint, s.region.clone(), s.bucket.clone(), creds)?;
        if let Some(alg) = &s.ssea {
            client.put_headers.push(("x-amz-server-side-encryption".into(), alg.clone()));
        }
        // Check the bucket now, retrying for a while (the bucket may be being created), then fail with the cause.
        let deadline = Instant::now()
            + Duration::from_millis(
                context.config.get("sluice.s3.start.timeout.ms").and_then(|v| v.parse().ok()).unwrap_or(60_000),
            );
        let mut backoff = Duration::from_millis(200);
        loop {
            match client.head_bucket().await {
                Ok(()) => break,
                Err(e) => {
                    let err = s3_error(&client, "checking the bucket", e);
                    if Instant::now() >= deadline {
                        return Err(err);
                    }
                    tracing::warn!(error = %err.trace(), "S3 sink: bucket not usable yet, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.settings = Some(Arc::new(s));
        self.client = Some(client);
        Ok(())
    }

    async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        // The partition of a run of records is built once (records come in runs of one partition).
        let mut tp: Option<TopicPartition> = None;
        for r in records {
            if !tp.as_ref().is_some_and(|t| t.partition == r.partition && *t.topic == *r.topic) {
                tp = Some(TopicPartition { topic: r.topic.to_string(), partition: r.partition });
            }
            self.put_one(tp.as_ref().expect("set"), r).await?;
        }
        self.reap().await?;
        self.enforce_budget().await?;
        self.scheduled_rotation().await
    }

    async fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), ConnectError> {
        // As Confluent's: files are written at rotation only.
        Ok(())
    }

    async fn pre_commit(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>, ConnectError> {
        self.scheduled_rotation().await?;
        // Offsets are handed back only for objects in the store: every upload is waited for (a failed one retried).
        let waiting: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, st)| st.upload.is_some() || st.rotation_pending)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in waiting {
            if self.partitions[&tp].rotation_pending {
                self.rotate(&tp).await?;
            }
            self.settle(&tp).await?;
        }
        let mut out = BTreeMap::new();
        for (tp, offset) in offsets {
            let safe = match self.partitions.get(tp).and_then(PartitionState::min_start) {
                Some(min) => min.min(*offset),
                None => *offset,
            };
            out.insert(tp.clone(), safe);
        }
        Ok(out)
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        let tps: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        for tp in tps {
            self.reset(&tp).await;
        }
        Ok(())
    }
}

/// For tests: the set of partitions with open files.
impl S3SinkTask {
    pub fn open_partitions(&self) -> HashSet<TopicPartition> {
        self.partitions.iter().filter(|(_, st)| st.count > 0).map(|(tp, _)| tp.clone()).collect()
    }
}
