//! The dependency graph and the supervision tree: depends_on, group
//! membership, cycles and the start order.

use std::collections::HashMap;

use super::{Parser, join};
use crate::config::units::{self, did_you_mean, words};
use crate::config::yaml::{Node, NodeKind};
use crate::config::*;

impl Parser<'_> {
    pub(super) fn depends_on(
        &mut self,
        node: &Node,
        path: &str,
    ) -> Option<Vec<(String, DependOn)>> {
        let conditions = words(DependOn::ALL, DependOn::as_str);
        let NodeKind::Map(entries) = &node.kind else {
            let found = node.describe();
            self.err(
                node,
                path,
                format!(
                    "expected a mapping of service names to {}, found {found}",
                    units::or_list(&conditions)
                ),
            );
            return None;
        };
        let mut out: Vec<(String, DependOn)> = Vec::new();
        let mut ok = true;
        for (k, v) in entries {
            let NodeKind::Scalar { value: name, .. } = &k.kind else {
                self.err(k, path, "service names must be strings");
                ok = false;
                continue;
            };
            let p = join(path, name);
            if out.iter().any(|(n, _)| n == name) {
                self.err(k, &p, "duplicate key");
                ok = false;
                continue;
            }
            self.positions.insert(p.clone(), k.clone());
            match self.choice(v, &p, &conditions) {
                Some(c) => out.push((name.clone(), c)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Cross-checks of the tree and the dependencies, and the start order.
    pub(super) fn tree(
        &mut self,
        doc: &Node,
        services: &mut [ServiceSpec],
        groups: &mut [GroupSpec],
        groups_node: Option<&Node>,
    ) -> Vec<usize> {
        let anchor = groups_node.unwrap_or(doc).clone();
        let svc_index: HashMap<String, usize> = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let group_index: HashMap<String, usize> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.clone(), i))
            .collect();
        let all_names: Vec<String> = services
            .iter()
            .map(|s| s.name.clone())
            .chain(groups.iter().map(|g| g.name.clone()))
            .collect();
        for g in groups.iter() {
            if svc_index.contains_key(&g.name) {
                let path = format!("groups.{}", g.name);
                let node = self.at(&path, &anchor);
                self.err(
                    &node,
                    &path,
                    format!("{:?} is already a service name", g.name),
                );
            }
        }
        let mut parent_of: HashMap<String, String> = HashMap::new();
        for g in groups.iter() {
            for (k, child) in g.children.iter().enumerate() {
                let path = format!("groups.{}.children[{k}]", g.name);
                let node = self.at(&path, &anchor);
                if child == &g.name {
                    self.err(&node, &path, "a group cannot contain itself");
                } else if !svc_index.contains_key(child) && !group_index.contains_key(child) {
                    let hint = did_you_mean(child, all_names.iter().map(String::as_str));
                    self.err(
                        &node,
                        &path,
                        format!("unknown service or group {child:?}{hint}"),
                    );
                } else if let Some(other) = parent_of.get(child) {
                    self.err(
                        &node,
                        &path,
                        format!("{child:?} is already a child of group {other:?}"),
                    );
                } else {
                    parent_of.insert(child.clone(), g.name.clone());
                }
            }
        }
        for g in groups.iter_mut() {
            g.parent = parent_of.get(&g.name).cloned();
        }
        // Groups that contain each other.
        for g in groups.iter() {
            let mut chain = vec![g.name.clone()];
            let mut cur = g.name.clone();
            while let Some(p) = parent_of.get(&cur) {
                if p == &g.name {
                    chain.push(p.clone());
                    let path = format!("groups.{}", g.name);
                    let node = self.at(&path, &anchor);
                    self.err(
                        &node,
                        &path,
                        format!("groups contain each other: {}", chain.join(" → ")),
                    );
                    break;
                }
                if chain.contains(p) {
                    break;
                }
                chain.push(p.clone());
                cur = p.clone();
            }
        }
        for s in services.iter_mut() {
            s.group = parent_of.get(&s.name).cloned();
        }

        // Edges: (from, to, why) — `to` starts after `from`.
        let mut edges: Vec<(usize, usize)> = Vec::new();
        for (i, s) in services.iter().enumerate() {
            for (dep, cond) in &s.depends_on {
                let path = format!("services.{}.depends_on.{dep}", s.name);
                let node = self.at(&path, doc);
                match svc_index.get(dep) {
                    None => {
                        let hint = did_you_mean(dep, services.iter().map(|s| s.name.as_str()));
                        self.err(&node, &path, format!("unknown service {dep:?}{hint}"));
                    }
                    Some(&j) if j == i => {
                        self.err(&node, &path, "a service cannot depend on itself");
                    }
                    Some(&j) => {
                        if *cond == DependOn::Ready && services[j].readiness.is_none() {
                            self.err(
                                &node,
                                &path,
                                format!(
                                    "{dep:?} has no readiness probe, so it never becomes ready; give it one or use started"
                                ),
                            );
                        }
                        if *cond == DependOn::Completed
                            && services[j].restart == RestartPolicy::Always
                        {
                            self.err(
                                &node,
                                &path,
                                format!(
                                    "{dep:?} has restart: always, so it never completes; give it restart: never or on-failure"
                                ),
                            );
                        }
                        edges.push((j, i));
                    }
                }
            }
        }
        for g in groups.iter() {
            let svc_children: Vec<usize> = g
                .children
                .iter()
                .filter_map(|c| svc_index.get(c).copied())
                .collect();
            for w in svc_children.windows(2) {
                edges.push((w[0], w[1]));
            }
        }
        // Kahn's algorithm; ties by declaration order.
        let n = services.len();
        let mut indeg = vec![0usize; n];
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b) in &edges {
            if !out[a].contains(&b) {
                out[a].push(b);
                indeg[b] += 1;
            }
        }
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| indeg[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &b in &out[i] {
                indeg[b] -= 1;
                if indeg[b] == 0 {
                    ready.insert(b);
                }
            }
        }
        if order.len() < n {
            // Name one cycle among what is left.
            let left: Vec<usize> = (0..n).filter(|i| indeg[*i] > 0).collect();
            let start = left[0];
            let mut path = vec![start];
            let mut cur = start;
            loop {
                let next = out[cur]
                    .iter()
                    .copied()
                    .find(|b| indeg[*b] > 0)
                    .expect("a node left by Kahn has a successor left");
                if let Some(pos) = path.iter().position(|&p| p == next) {
                    let cycle: Vec<&str> = path[pos..]
                        .iter()
                        .chain(std::iter::once(&next))
                        .map(|&k| services[k].name.as_str())
                        .collect();
                    let first = services[path[pos]].name.clone();
                    let second = services[path.get(pos + 1).copied().unwrap_or(next)]
                        .name
                        .clone();
                    let p = format!("services.{second}.depends_on.{first}");
                    let node = self.at(&p, doc);
                    let p = if self.positions.contains_key(&p) {
                        p
                    } else {
                        format!("services.{second}")
                    };
                    let note = if groups.is_empty() {
                        ""
                    } else {
                        " (a group's children also start in their listed order)"
                    };
                    self.err(
                        &node,
                        &p,
                        format!("dependency cycle: {}{note}", cycle.join(" → ")),
                    );
                    break;
                }
                path.push(next);
                cur = next;
            }
            return (0..n).collect();
        }
        order
    }
}
