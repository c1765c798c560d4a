use std::borrow::Cow;

use super::*;

#[test]
fn error_kinds_are_snake_case_on_the_wire() {
    let line = serde_json::to_string(&Response::error(ErrorKind::UnknownService, "no")).unwrap();
    assert_eq!(
        line,
        r#"{"type":"error","kind":"unknown_service","message":"no"}"#
    );
    for (kind, word) in [
        (ErrorKind::BadRequest, "bad_request"),
        (ErrorKind::Conflict, "conflict"),
        (ErrorKind::Version, "version"),
        (ErrorKind::Busy, "busy"),
        (ErrorKind::Internal, "internal"),
    ] {
        assert_eq!(serde_json::to_value(kind).unwrap(), word);
    }
}

#[test]
fn an_error_without_a_kind_or_with_a_newer_one_reads_as_internal() {
    for line in [
        r#"{"type":"error","message":"boom"}"#,
        r#"{"type":"error","kind":"from_the_future","message":"boom"}"#,
    ] {
        let r: Response = serde_json::from_str(line).unwrap();
        assert_eq!(r, Response::error(ErrorKind::Internal, "boom"));
    }
}

#[test]
fn a_brief_row_is_an_array_read_back_borrowed() {
    let row = BriefRow {
        name: "web".into(),
        group: Some("front".into()),
        state: State::Running,
        health: Health::Healthy,
        pid: Some(42),
        uptime_s: Some(1.5),
        restarts: 2,
        risk: 0.25,
        last: "exit 1 at 10:00:00".into(),
        cpu_percent: Some(12.5),
        rss_bytes: None,
    };
    let line = BriefLine {
        kind: "brief".into(),
        version: VERSION,
        services: vec![row.clone()],
        reload_error: None,
    };
    let text = serde_json::to_string(&line).unwrap();
    assert!(
        text.contains(
            r#"[["web","front","running","healthy",42,1.5,2,0.25,"exit 1 at 10:00:00",12.5,null]]"#
        ),
        "{text}"
    );
    let back: BriefLine = serde_json::from_str(&text).unwrap();
    assert_eq!(back.services, vec![row]);
    assert!(matches!(back.services[0].name, Cow::Borrowed(_)));
    // A name with an escape is read too (owned).
    let text = text.replace(r#""web""#, r#""w\"eb""#);
    let back: BriefLine = serde_json::from_str(&text).unwrap();
    assert_eq!(back.services[0].name, "w\"eb");
}
