-- A store written by a release that kept a job's every field in a column of its own: its jobs
-- move into the envelope and payload, the payload built from those columns, in one
-- transaction (run with the schema between its two halves).
INSERT INTO jobs (id, principal, fingerprint, state, sent, created_ms, updated_ms, finished_ms,
    credits_used, tokens_used, reused_from, error, owner_pid, owner_run, lease_until_ms,
    may_be_charged, unsaved, revision, payload)
SELECT id, principal, fingerprint, state, sent, created_ms, updated_ms, finished_ms,
    credits_used, tokens_used, reused_from, error, owner_pid, owner_run, 0,
    may_be_charged, unsaved, 0,
    json_object(
        'model', 'reve/edit-image',
        'prompt', prompt,
        'inputs', CASE WHEN input_mime IS NULL THEN json_array() ELSE json_array(json_object(
            'mime_type', input_mime, 'width', input_width, 'height', input_height,
            'bytes', input_bytes)) END,
        'destination', json_object('folder', stage_dir, 'name', output_name,
            'saves', json(CASE WHEN saves THEN 'true' ELSE 'false' END)),
        'answer', json_object('url', generated_url, 'request_id', request_id,
            'content_violation', json(CASE content_violation WHEN 1 THEN 'true'
                WHEN 0 THEN 'false' ELSE 'null' END)),
        'saving', CASE WHEN saving_path IS NULL THEN NULL
            ELSE json_object('path', saving_path, 'bytes', saving_bytes) END,
        'result', CASE WHEN mime_type IS NULL THEN NULL ELSE json_object(
            'mime_type', mime_type, 'width', width, 'height', height, 'bytes', bytes,
            'path', result_path, 'url', result_url,
            'preview', CASE WHEN preview_mime IS NULL THEN NULL ELSE json_object(
                'mime_type', preview_mime, 'width', preview_width,
                'height', preview_height) END) END)
FROM jobs_in_columns;
DROP TABLE jobs_in_columns;
