//! A tiny HTTP/1.1 client over a raw TcpStream (so tests can also send
//! malformed, oversized and slow requests), and the OpenAPI document's
//! schemas to check the answers against.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Answer {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: {} {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// One request on a fresh connection; `headers` are added as given.
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut s = connect(port);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    read_answer(&mut BufReader::new(s))
}

pub fn get(port: u16, path: &str) -> Answer {
    request(port, "GET", path, &[])
}

pub fn post(port: u16, path: &str) -> Answer {
    request(port, "POST", path, &[("Content-Length", "0")])
}

/// Status line and headers.
pub fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            return (status, headers);
        }
        let (n, v) = line.split_once(':').unwrap();
        headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
    }
}

pub fn read_answer(r: &mut impl BufRead) -> Answer {
    let (status, headers) = read_head(r);
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(n) = answer.header("content-length") {
        let mut body = vec![0; n.parse().unwrap()];
        r.read_exact(&mut body).unwrap();
        answer.body = body;
    } else if answer.header("transfer-encoding") == Some("chunked") {
        while let Some(chunk) = read_chunk(r) {
            answer.body.extend(chunk);
        }
    } else {
        r.read_to_end(&mut answer.body).unwrap();
    }
    answer
}

/// The next chunk of a chunked body; none at its end.
pub fn read_chunk(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut size = String::new();
    if r.read_line(&mut size).ok()? == 0 {
        return None;
    }
    let n = usize::from_str_radix(size.trim(), 16).unwrap();
    let mut chunk = vec![0; n + 2];
    r.read_exact(&mut chunk).ok()?;
    chunk.truncate(n);
    (n > 0).then_some(chunk)
}

/// An open `GET /api/v1/events`, read one SSE event at a time.
pub struct EventStream {
    reader: BufReader<TcpStream>,
    pending: String,
    pub status: u16,
}

/// One server-sent event: its fields.
#[derive(Debug, Default)]
pub struct Sse {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl EventStream {
    pub fn open(port: u16, headers: &[(&str, &str)]) -> EventStream {
        let mut s = connect(port);
        let mut head = "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_string();
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let (status, headers) = read_head(&mut reader);
        if status == 200 {
            let ty = headers.iter().find(|(n, _)| n == "content-type");
            assert_eq!(ty.unwrap().1, "text/event-stream");
        }
        EventStream {
            reader,
            pending: String::new(),
            status,
        }
    }

    /// The next event (comments skipped), within `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<Sse> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut e = Sse::default();
                for line in block.lines() {
                    match line.split_once(": ") {
                        Some(("id", v)) => e.id = Some(v.into()),
                        Some(("event", v)) => e.event = Some(v.into()),
                        Some(("data", v)) => e.data.push_str(v),
                        _ => {}
                    }
                }
                if e.id.is_some() || e.event.is_some() || !e.data.is_empty() {
                    return Some(e);
                }
                continue;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let socket = self.reader.get_ref();
            socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let chunk = read_chunk(&mut self.reader)?;
            self.pending.push_str(&String::from_utf8(chunk).unwrap());
        }
    }
}

pub const TOKEN: &str = "s3cret-token-0123456789";

pub fn with_api(port: u16, services: &str) -> String {
    format!("api:\n  listen: 127.0.0.1:{port}\nservices:\n{services}")
}

pub const WEB: &str = "  web:\n    command: exec sleep 1000\n";

/// A daemon with the API on a free port; wait until it answers.
pub fn start(yaml: &str) -> super::common::Instance {
    let inst = super::common::Instance::start(yaml);
    inst.wait_running("web", None);
    inst
}

/// The OpenAPI document, as `sentineld openapi` prints it.
pub struct OpenApi {
    pub doc: Value,
}

impl OpenApi {
    pub fn load(bin: &str) -> OpenApi {
        let out = std::process::Command::new(bin)
            .arg("openapi")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let doc: Value = serde_yaml::from_slice(&out.stdout).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        OpenApi { doc }
    }

    /// Every (method, path template) the document describes.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut ops = Vec::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
        ops.sort();
        ops
    }

    /// Check `answer` to `method template` against the document: its
    /// status is one the operation lists, and its JSON body is valid
    /// against that response's schema.
    pub fn check(&self, method: &str, template: &str, answer: &Answer) {
        let op = &self.doc["paths"][template][method.to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not in the document");
        let mut response = &op["responses"][answer.status.to_string()];
        assert!(
            response.is_object(),
            "{method} {template}: status {} is not in the document ({})",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        if let Some(r) = response["$ref"].as_str() {
            response = self.pointer(r);
        }
        let Some(schema) = response["content"]["application/json"]["schema"].as_object() else {
            return;
        };
        assert_eq!(answer.header("content-type"), Some("application/json"));
        self.validate(&Value::Object(schema.clone()), &answer.json());
    }

    /// `instance` is valid against the component schema `name`.
    pub fn validate_as(&self, name: &str, instance: &Value) {
        let reference = serde_json::json!({"$ref": format!("#/components/schemas/{name}")});
        self.validate(&reference, instance);
    }

    /// `schema` (which may refer to `#/components/...`) holds for `instance`.
    pub fn validate(&self, schema: &Value, instance: &Value) {
        let mut root = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"].clone(),
        });
        for (k, v) in schema.as_object().unwrap() {
            root[k] = v.clone();
        }
        let validator = jsonschema::validator_for(&root).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\nin {instance}");
    }

    fn pointer(&self, reference: &str) -> &Value {
        self.doc.pointer(reference.trim_start_matches('#')).unwrap()
    }
}
