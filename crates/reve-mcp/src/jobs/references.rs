//! A previous result given as a picture by reference: `reve://jobs/{id}/result` (the
//! `result_uri` every result gives) or `job:{id}`. People edit in rounds, and a client on
//! another machine has no file to pass: the server has the picture, so the call names it.
//!
//! The reference is replaced by the picture before anything else looks at the arguments, so
//! the rest of the pipeline (checks, reuse of identical calls, the request, the input's
//! preview) sees an ordinary picture, and the job records where it came from
//! ([`crate::generation::Generation::parents`]).

use std::path::PathBuf;

use super::{JobError, JobRecord, JobState, Jobs, PICTURES_PREFIX, Picture};
use crate::generated::ToolArguments;

/// The short form of a reference to a previous result: `job:` and its id.
pub const JOB_REFERENCE_PREFIX: &str = "job:";

/// The shortest start of a job id a reference may give: what `reve-mcp jobs` shows.
const SHORT_ID_LEN: usize = 8;
/// How many of the newest jobs the start of an id is looked for among.
const PREFIX_FOUND_AMONG: u32 = 1000;

/// The job a picture argument names by reference, if it is one; an error for a `reve://` URI
/// that names something other than a job's result.
fn referenced_job(picture: &str) -> Result<Option<&str>, JobError> {
    if let Some(id) = picture.strip_prefix(JOB_REFERENCE_PREFIX) {
        return Ok(Some(id.trim()));
    }
    let Some(rest) = picture.strip_prefix(PICTURES_PREFIX) else {
        return Ok(None);
    };
    match rest.split_once('/') {
        Some((id, segment)) if Picture::from_segment(segment) == Some(Picture::Result) => {
            Ok(Some(id))
        }
        _ => Err(JobError::NotAResultReference(picture.to_owned())),
    }
}

impl Jobs {
    /// Replaces each picture of `arguments` given by reference with that result of
    /// `principal`'s: the path of its saved file, or, when nothing is saved, the URL the
    /// provider published it at. Returns the jobs referred to, in the order given, and the saved
    /// files named: the pipeline reads those wherever the caller may read files, since they are
    /// this server's own results, and reads them as it reads any file, within the bytes that
    /// request bodies may hold at once (never whole into memory here). Another principal's job
    /// is refused exactly as an unknown one; nothing is sent or paid for on any refusal.
    pub(super) async fn resolve_references(
        &self,
        arguments: &mut ToolArguments,
        principal: &str,
    ) -> Result<(Vec<String>, Vec<PathBuf>), JobError> {
        let mut parents = Vec::new();
        let mut saved_files = Vec::new();
        for picture in arguments.pictures_mut() {
            let Some(id) = referenced_job(picture)? else {
                continue;
            };
            let record = self.referred_to(id, principal).await?;
            let id = record.id.clone();
            // A call that reused an identical one's result gives that one's picture.
            let record = match &record.reused_from {
                Some(owner) => self
                    .inner
                    .store
                    .get(owner.clone())
                    .await
                    .map_err(JobError::Store)?
                    .ok_or_else(|| JobError::UnknownJob(id.clone()))?,
                None => record,
            };
            if record.state != JobState::Succeeded {
                return Err(JobError::NotFinished {
                    id,
                    state: record.state.as_str(),
                });
            }
            let generation = record.generation();
            let result = generation.result.clone().unwrap_or_default();
            let url = result
                .url
                .clone()
                .or_else(|| generation.published_url().map(str::to_owned));
            *picture = match (result.path, url) {
                // The saved file is what the person saw, and it does not expire.
                (Some(path), url) => match saved_file(PathBuf::from(&path)).await {
                    Ok(file) => {
                        saved_files.push(file);
                        path
                    }
                    Err(error) => match url {
                        Some(url) => {
                            tracing::info!(job = %id, %error, "the saved result cannot be read; giving the provider's URL instead");
                            url
                        }
                        None => {
                            return Err(JobError::ResultUnreadable {
                                id,
                                path,
                                reason: error.to_string(),
                            });
                        }
                    },
                },
                // Nothing saved (`--no-save`): the provider's URL, while it keeps the picture.
                (None, Some(url)) => url,
                (None, None) => return Err(JobError::NothingToGive(id)),
            };
            parents.push(record.id);
        }
        Ok((parents, saved_files))
    }

    /// The job of `principal`'s that `id` names: its whole id, or (for a person who read it
    /// in `reve-mcp jobs`) the start of it, at least 8 characters, if only one of the newest
    /// jobs has it.
    async fn referred_to(&self, id: &str, principal: &str) -> Result<JobRecord, JobError> {
        let unknown = || JobError::UnknownJob(id.to_owned());
        let store = &self.inner.store;
        if let Some(record) = store.get(id.to_owned()).await.map_err(JobError::Store)? {
            return (record.principal == principal)
                .then_some(record)
                .ok_or_else(unknown);
        }
        if id.len() < SHORT_ID_LEN {
            return Err(unknown());
        }
        let mut matching = store
            .recent(PREFIX_FOUND_AMONG)
            .await
            .map_err(JobError::Store)?
            .into_iter()
            .filter(|record| record.principal == principal && record.id.starts_with(id));
        match (matching.next(), matching.next()) {
            (Some(record), None) => Ok(record),
            _ => Err(unknown()),
        }
    }
}

/// `path`, if it is still a file: a saved result that was moved or deleted is said so before
/// the job is recorded, and its URL given instead while the provider keeps it. (Its size is
/// checked against the input limit as the request is built, as any file's is.)
async fn saved_file(path: PathBuf) -> Result<PathBuf, std::io::Error> {
    let metadata = tokio::fs::symlink_metadata(&path).await?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("it is no longer a file"));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_is_a_results_uri_or_a_job_id() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            referenced_job(&format!("reve://jobs/{id}/result")).unwrap(),
            Some(id)
        );
        assert_eq!(referenced_job(&format!("job:{id}")).unwrap(), Some(id));
        for picture in [
            "/home/me/cat.png",
            "https://example.com/cat.png",
            "data:image/png;base64,AA",
        ] {
            assert_eq!(referenced_job(picture).unwrap(), None, "{picture}");
        }
        // A preview is not the picture: refused, naming what would do.
        let error = referenced_job(&format!("reve://jobs/{id}/preview")).unwrap_err();
        assert!(error.to_string().contains("/result"), "{error}");
    }
}
