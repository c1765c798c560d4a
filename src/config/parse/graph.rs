//! The dependency graph and the supervision tree: depends_on, group
//! membership, cycles and the start order.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::{Parser, join};
use crate::config::units::{self, did_you_mean, words};
use crate::config::yaml::Node;
use crate::config::*;

impl Parser<'_> {
    pub(super) fn depends_on(
        &mut self,
        node: &Node,
        path: &str,
    ) -> Option<Vec<(String, DependOn)>> {
        let conditions = words(DependOn::ALL, DependOn::as_str);
        let what = format!("service names to {}", units::or_list(&conditions));
        let entries = self.entries(node, path, &what)?;
        let mut out: Vec<(String, DependOn)> = Vec::new();
        let mut ok = true;
        for (k, v) in entries {
            let Some(name) = self.name(k, path, "service") else {
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
        let parent_of = self.group_members(&anchor, services, groups);
        for g in groups.iter_mut() {
            g.parent = parent_of.get(&g.name).cloned();
        }
        self.nested_groups(&anchor, groups, &parent_of);
        for s in services.iter_mut() {
            s.group = parent_of.get(&s.name).cloned();
        }
        let edges = self.start_edges(doc, services, groups);
        match start_order(services.len(), &edges) {
            Ok(order) => order,
            Err(cycle) => {
                self.report_cycle(doc, services, &cycle, !groups.is_empty());
                (0..services.len()).collect()
            }
        }
    }

    /// Checks the groups' names and children; the group each child is in.
    fn group_members(
        &mut self,
        anchor: &Node,
        services: &[ServiceSpec],
        groups: &[GroupSpec],
    ) -> HashMap<String, String> {
        let service_names: HashSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
        // In order, for the hints; and a set, to look names up in.
        let mut names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        names.extend(groups.iter().map(|g| g.name.as_str()));
        let known: HashSet<&str> = names.iter().copied().collect();
        for g in groups {
            if service_names.contains(&g.name.as_str()) {
                let path = format!("groups.{}", g.name);
                let node = self.at(&path, anchor);
                let clash = format!("{:?} is already a service name", g.name);
                self.err(&node, &path, clash);
            }
        }
        let mut parent_of: HashMap<String, String> = HashMap::new();
        for g in groups {
            for (k, child) in g.children.iter().enumerate() {
                let path = format!("groups.{}.children[{k}]", g.name);
                let node = self.at(&path, anchor);
                if child == &g.name {
                    self.err(&node, &path, "a group cannot contain itself");
                } else if !known.contains(child.as_str()) {
                    let hint = did_you_mean(child, names.iter().copied());
                    let unknown = format!("unknown service or group {child:?}{hint}");
                    self.err(&node, &path, unknown);
                } else if let Some(other) = parent_of.get(child) {
                    let taken = format!("{child:?} is already a child of group {other:?}");
                    self.err(&node, &path, taken);
                } else {
                    parent_of.insert(child.clone(), g.name.clone());
                }
            }
        }
        parent_of
    }

    /// Reports groups that contain each other, once from each group on the loop.
    fn nested_groups(
        &mut self,
        anchor: &Node,
        groups: &[GroupSpec],
        parent_of: &HashMap<String, String>,
    ) {
        for g in groups {
            let mut chain = vec![g.name.clone()];
            let mut cur = g.name.clone();
            while let Some(p) = parent_of.get(&cur) {
                if p == &g.name {
                    chain.push(p.clone());
                    let path = format!("groups.{}", g.name);
                    let node = self.at(&path, anchor);
                    let cycle = format!("groups contain each other: {}", chain.join(" → "));
                    self.err(&node, &path, cycle);
                    break;
                }
                if chain.contains(p) {
                    break;
                }
                chain.push(p.clone());
                cur = p.clone();
            }
        }
    }

    /// Edges `(a, b)`, b starting after a: each dependency, and the services
    /// of a group in their listed order.
    fn start_edges(
        &mut self,
        doc: &Node,
        services: &[ServiceSpec],
        groups: &[GroupSpec],
    ) -> Vec<(usize, usize)> {
        let index: HashMap<&str, usize> = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let mut edges = Vec::new();
        for (i, s) in services.iter().enumerate() {
            for (dep, cond) in &s.depends_on {
                if let Some(j) = self.dependency(doc, services, &index, i, dep, *cond) {
                    edges.push((j, i));
                }
            }
        }
        for g in groups {
            let in_order: Vec<usize> = g
                .children
                .iter()
                .filter_map(|c| index.get(c.as_str()).copied())
                .collect();
            edges.extend(in_order.windows(2).map(|w| (w[0], w[1])));
        }
        edges
    }

    /// Checks service `i`'s dependency on `dep`; the index of `dep`, if
    /// it is another service.
    fn dependency(
        &mut self,
        doc: &Node,
        services: &[ServiceSpec],
        index: &HashMap<&str, usize>,
        i: usize,
        dep: &str,
        cond: DependOn,
    ) -> Option<usize> {
        let path = format!("services.{}.depends_on.{dep}", services[i].name);
        let node = self.at(&path, doc);
        let Some(&j) = index.get(dep) else {
            let hint = did_you_mean(dep, services.iter().map(|s| s.name.as_str()));
            self.err(&node, &path, format!("unknown service {dep:?}{hint}"));
            return None;
        };
        if j == i {
            self.err(&node, &path, "a service cannot depend on itself");
            return None;
        }
        if cond == DependOn::Ready && services[j].readiness.is_none() {
            let never = format!(
                "{dep:?} has no readiness probe, so it never becomes ready; give it one or use started"
            );
            self.err(&node, &path, never);
        }
        if cond == DependOn::Completed && services[j].restart == RestartPolicy::Always {
            let never = format!(
                "{dep:?} has restart: always, so it never completes; give it restart: never or on-failure"
            );
            self.err(&node, &path, never);
        }
        Some(j)
    }

    /// Reports a dependency cycle at the `depends_on` entry that closes it,
    /// or at the service when group order closes it.
    fn report_cycle(
        &mut self,
        doc: &Node,
        services: &[ServiceSpec],
        cycle: &[usize],
        grouped: bool,
    ) {
        let names: Vec<&str> = cycle.iter().map(|&k| services[k].name.as_str()).collect();
        let (first, second) = (names[0], names[1]);
        let entry = format!("services.{second}.depends_on.{first}");
        let node = self.at(&entry, doc);
        let path = if self.positions.contains_key(&entry) {
            entry
        } else {
            format!("services.{second}")
        };
        let note = if grouped {
            " (a group's children also start in their listed order)"
        } else {
            ""
        };
        let message = format!("dependency cycle: {}{note}", names.join(" → "));
        self.err(&node, &path, message);
    }
}

/// Kahn's algorithm over `n` services, ties by declaration order. Err: a
/// cycle among those that can never start, from a service back to itself.
fn start_order(n: usize, edges: &[(usize, usize)]) -> Result<Vec<usize>, Vec<usize>> {
    let mut indeg = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        if !out[a].contains(&b) {
            out[a].push(b);
            indeg[b] += 1;
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
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
    if order.len() == n {
        Ok(order)
    } else {
        Err(cycle_among_left(&out, &indeg))
    }
}

/// Walks successors among the nodes Kahn's algorithm left until one repeats.
fn cycle_among_left(out: &[Vec<usize>], indeg: &[usize]) -> Vec<usize> {
    let start = (0..out.len())
        .find(|&i| indeg[i] > 0)
        .expect("Kahn left a node");
    let mut path = vec![start];
    let mut cur = start;
    loop {
        let next = out[cur]
            .iter()
            .copied()
            .find(|&b| indeg[b] > 0)
            .expect("a node left by Kahn has a successor left");
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle = path.split_off(pos);
            cycle.push(next);
            return cycle;
        }
        path.push(next);
        cur = next;
    }
}

#[cfg(test)]
mod tests {
    use super::start_order;

    #[test]
    fn start_order_keeps_declaration_order_where_free() {
        assert_eq!(start_order(3, &[]), Ok(vec![0, 1, 2]));
        assert_eq!(start_order(3, &[(2, 0), (2, 0)]), Ok(vec![1, 2, 0]));
    }

    #[test]
    fn a_cycle_is_named_from_a_service_back_to_itself() {
        assert_eq!(
            start_order(3, &[(0, 1), (1, 2), (2, 1)]),
            Err(vec![1, 2, 1])
        );
        assert_eq!(start_order(2, &[(1, 1)]), Err(vec![1, 1]));
    }
}
