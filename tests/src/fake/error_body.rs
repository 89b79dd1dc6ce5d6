//! The error bodies AIML sends, in both of its shapes.
//!
//! Most errors come from the NestJS application and carry the documented body
//! `{"message", "path", "requestId", "statusCode", "timestamp"}`, where
//! `message` is a string, or an array of strings for validation failures.
//! Some (billing among them) use `{"error": {"name", "message"}}` instead.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Express's JSON content type, parameters included, so clients must not
/// compare it verbatim to `application/json`.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The documented NestJS error body; `message` is a string or an array.
pub(crate) fn documented(
    status: StatusCode,
    path: &str,
    request_id: String,
    message: impl Into<Value>,
) -> Response {
    let body = json!({
        "message": message.into(),
        "path": path,
        "requestId": request_id,
        "statusCode": status.as_u16(),
        "timestamp": rfc3339(SystemTime::now()),
    });
    json_response(status, &body)
}

/// The other shape: `{"error": {"name", "message"}}`.
pub(crate) fn error_field(status: StatusCode, name: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({ "error": { "name": name, "message": message } }),
    )
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// `2025-10-01T01:34:57.910Z`, what JavaScript's `Date.toISOString` prints.
fn rfc3339(at: SystemTime) -> String {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let in_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60,
        since_epoch.subsec_millis()
    )
}

/// Howard Hinnant's `civil_from_days`, for days since 1970-01-01 (never negative here).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_matches_javascript_iso_strings() {
        let example = UNIX_EPOCH + Duration::from_millis(1_759_282_497_910);
        assert_eq!(rfc3339(example), "2025-10-01T01:34:57.910Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap_day), "2000-02-29T00:00:00.000Z");
    }
}
