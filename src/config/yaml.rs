//! A YAML document as a tree of nodes that remember where they were written.
//!
//! serde_yaml reports positions only for its own errors; validation needs the
//! line and column of every value so that each semantic error can point at the
//! text that caused it. This module owns that tree and nothing else: it knows
//! no sentineld keys.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar as written. `plain` is false for quoted and block scalars,
    /// which are always strings.
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    /// 1-based line and column of the node's first character.
    pub line: usize,
    pub col: usize,
}

impl Node {
    /// A plain `~`, `null` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, plain: true }
            if value.is_empty() || value == "~" || value == "null" || value == "Null" || value == "NULL")
    }

    /// The value of `key` in a mapping (the first, if written twice).
    pub fn get(&self, key: &str) -> Option<&Node> {
        let NodeKind::Map(entries) = &self.kind else {
            return None;
        };
        entries
            .iter()
            .find(|(k, _)| matches!(&k.kind, NodeKind::Scalar { value, .. } if value == key))
            .map(|(_, v)| v)
    }

    /// What the node is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            _ if self.is_null() => "nothing (null)".into(),
            NodeKind::Scalar { value, .. } => {
                let short: String = value.chars().take(40).collect();
                format!("{short:?}")
            }
            NodeKind::Seq(_) => "a list".into(),
            NodeKind::Map(_) => "a mapping".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Parse one YAML document. An empty document is an empty mapping.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        line: e.marker().line(),
        col: e.marker().col() + 1,
        message: e.info().to_string(),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.root.unwrap_or(Node {
        kind: NodeKind::Map(Vec::new()),
        line: 1,
        col: 1,
    }))
}

enum Open {
    Seq(Node),
    /// A mapping under construction and the key waiting for its value.
    Map(Node, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<(Open, usize)>,
    anchors: Vec<(usize, Node)>,
    root: Option<Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.push((anchor, node.clone()));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some((Open::Seq(seq), _)) => {
                if let NodeKind::Seq(items) = &mut seq.kind {
                    items.push(node);
                }
            }
            Some((Open::Map(map, pending), _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let NodeKind::Map(entries) = &mut map.kind {
                        entries.push((key, node));
                    }
                }
            },
        }
    }
}

fn at(mark: &Marker, kind: NodeKind) -> Node {
    Node {
        kind,
        line: mark.line(),
        col: mark.col() + 1,
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                self.push_value(at(&mark, NodeKind::Scalar { value, plain }), anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack
                    .push((Open::Seq(at(&mark, NodeKind::Seq(Vec::new()))), anchor));
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push((
                    Open::Map(at(&mark, NodeKind::Map(Vec::new())), None),
                    anchor,
                ));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((open, anchor)) = self.stack.pop() {
                    let node = match open {
                        Open::Seq(n) | Open::Map(n, _) => n,
                    };
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => match self.anchors.iter().rev().find(|(a, _)| *a == id) {
                Some((_, node)) => {
                    let mut node = node.clone();
                    node.line = mark.line();
                    node.col = mark.col() + 1;
                    self.push_value(node, 0);
                }
                None => {
                    self.error.get_or_insert(SyntaxError {
                        line: mark.line(),
                        col: mark.col() + 1,
                        message: "alias to an unknown anchor".into(),
                    });
                }
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(node: &Node) -> &str {
        match &node.kind {
            NodeKind::Scalar { value, .. } => value,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn positions_of_nested_values() {
        let doc = parse("services:\n  web:\n    command: x\n    env: [a, b]\n").unwrap();
        let NodeKind::Map(top) = &doc.kind else {
            panic!()
        };
        let NodeKind::Map(services) = &top[0].1.kind else {
            panic!()
        };
        let NodeKind::Map(web) = &services[0].1.kind else {
            panic!()
        };
        assert_eq!(scalar(&web[0].0), "command");
        assert_eq!((web[0].1.line, web[0].1.col), (3, 14));
        assert_eq!((web[1].1.line, web[1].1.col), (4, 10));
    }

    #[test]
    fn quoted_scalars_are_not_plain() {
        let doc = parse("a: 'x'\nb: x\n").unwrap();
        let NodeKind::Map(m) = &doc.kind else {
            panic!()
        };
        assert!(matches!(m[0].1.kind, NodeKind::Scalar { plain: false, .. }));
        assert!(matches!(m[1].1.kind, NodeKind::Scalar { plain: true, .. }));
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let doc = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        let NodeKind::Map(m) = &doc.kind else {
            panic!()
        };
        assert_eq!(m[0].1.kind, m[1].1.kind);
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse("a: [1, 2\nb: c\n").unwrap_err();
        assert!(err.line >= 1, "{err:?}");
    }

    #[test]
    fn empty_document_is_an_empty_map() {
        assert_eq!(parse("").unwrap().kind, NodeKind::Map(vec![]));
    }
}
