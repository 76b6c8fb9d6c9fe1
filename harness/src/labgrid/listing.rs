//! What `labgrid-client` prints, read back: a reservation (`reserve`), places with their
//! tags and holders (`-v places`), and a place's acquired resources (`show`). labgrid
//! prints these for people; the parts read here are the ones its code prints in a fixed
//! form (`Place.show`, `Reservation.show`, and a resource as Python's `pformat`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

/// A reservation as `labgrid-client reserve` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub token: String,
    /// `waiting`, `allocated`, `acquired`, `expired`, `invalid`.
    pub state: String,
}

pub fn reservation(text: &str) -> Option<Reservation> {
    let field = |name: &str| {
        text.lines()
            .filter_map(|line| line.trim().strip_prefix(name))
            .map(|value| value.trim().to_string())
            .next()
    };
    Some(Reservation {
        token: field("token:")?,
        state: field("state:")?,
    })
}

/// One place of `labgrid-client -v places` (or the head of `show`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaceInfo {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    /// `host/user` of whoever acquired it.
    pub acquired: Option<String>,
    /// The token of the reservation it is allocated to.
    pub reservation: Option<String>,
}

impl PlaceInfo {
    /// Who has it, in words, if anyone.
    pub fn holder(&self) -> Option<String> {
        match (&self.acquired, &self.reservation) {
            (Some(by), _) => Some(format!("{} (acquired by {by})", self.name)),
            (None, Some(token)) => Some(format!("{} (reserved, token {token})", self.name)),
            (None, None) => None,
        }
    }
}

static PLACE_HEAD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^Place '(?P<name>[^']+)':$").expect("valid"));

pub fn places(text: &str) -> Vec<PlaceInfo> {
    let mut places: Vec<PlaceInfo> = Vec::new();
    for line in text.lines() {
        if let Some(head) = PLACE_HEAD.captures(line) {
            places.push(PlaceInfo {
                name: head["name"].to_string(),
                ..PlaceInfo::default()
            });
            continue;
        }
        // Lines of another block (a resource of `show`) end the place's own fields.
        if !line.starts_with("  ") {
            if !line.is_empty() && places.last().is_some() {
                break;
            }
            continue;
        }
        let Some(place) = places.last_mut() else {
            continue;
        };
        let line = line.trim();
        if let Some(tags) = line.strip_prefix("tags: ") {
            place.tags = tags
                .split(", ")
                .filter_map(|pair| pair.split_once('='))
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect();
        } else if let Some(by) = line.strip_prefix("acquired: ") {
            place.acquired = (by != "None").then(|| by.to_string());
        } else if let Some(token) = line.strip_prefix("reservation: ") {
            place.reservation = Some(token.to_string());
        }
    }
    places
}

/// A resource a place acquired, as `show` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The exporter that published it (the first part of its path).
    pub exporter: String,
    pub group: String,
    /// Its class: `NetworkSerialPort`, `NetworkPowerPort`, …
    pub class: String,
    /// Its parameters: strings and numbers as labgrid holds them.
    pub params: BTreeMap<String, String>,
}

static RESOURCE_HEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:Acquired|Matching) resource '[^']*' \((?P<exporter>[^/]+)/(?P<group>[^/]+)/(?P<class>[^/]+)/[^)]+\):$",
    )
    .expect("valid")
});

/// `'key': 'text'` or `'key': 123` in a resource's pformat.
static PARAM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"'(?P<key>[a-z_]+)': (?:'(?P<text>[^']*)'|(?P<number>-?\d+))").expect("valid")
});

/// The place named at the top of `show`, and the resources it acquired (or, before it
/// is acquired, matches).
pub fn acquired(text: &str) -> (Option<PlaceInfo>, Vec<Resource>) {
    let place = places(text).into_iter().next();
    let mut resources: Vec<Resource> = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if let Some(head) = RESOURCE_HEAD.captures(line) {
            resources.push(Resource {
                exporter: head["exporter"].to_string(),
                group: head["group"].to_string(),
                class: head["class"].to_string(),
                params: BTreeMap::new(),
            });
            inside = true;
            continue;
        }
        if !line.starts_with(' ') {
            inside = false;
            continue;
        }
        let Some(resource) = resources.last_mut().filter(|_| inside) else {
            continue;
        };
        for param in PARAM.captures_iter(line) {
            let value = param
                .name("text")
                .or_else(|| param.name("number"))
                .map_or("", |m| m.as_str());
            // The first of a key wins: the resource's own `host`, not a nested one.
            resource
                .params
                .entry(param["key"].to_string())
                .or_insert_with(|| value.to_string());
        }
    }
    (place, resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed by labgrid-client 26.0.1 for a place holding a serial port and a PDU port.
    const SHOW: &str = "\
Place 'lamp1':
  tags: board=esp32c3, site=desk
  matches:
    exp1/lamp1/*
  acquired: vm/root
  acquired resources:
    exp1/lamp1/NetworkPowerPort/NetworkPowerPort
    exp1/lamp1/NetworkSerialPort/NetworkSerialPort
  created: 2026-12-02 07:38:48.413437
  changed: 2026-12-02 07:38:56.757815
  reservation: NSZMPH7YA3
Acquired resource 'NetworkPowerPort' (exp1/lamp1/NetworkPowerPort/NetworkPowerPort):
  {'acquired': 'lamp1',
   'avail': True,
   'cls': 'NetworkPowerPort',
   'params': {'extra': {'proxy': 'localhost', 'proxy_required': False},
              'host': 'http://127.0.0.1:8080/{index}/{value}',
              'index': '0',
              'model': 'simplerest'}}
Acquired resource 'NetworkSerialPort' (exp1/lamp1/NetworkSerialPort/NetworkSerialPort):
  {'acquired': 'lamp1',
   'avail': True,
   'cls': 'NetworkSerialPort',
   'params': {'extra': {'proxy': 'localhost', 'proxy_required': False},
              'host': '127.0.0.1',
              'port': 4123,
              'protocol': 'rfc2217',
              'speed': 115200}}
";

    #[test]
    fn a_shown_place_gives_its_holder_and_resources() {
        let (place, resources) = acquired(SHOW);
        let place = place.unwrap();
        assert_eq!(place.name, "lamp1");
        assert_eq!(place.tags["board"], "esp32c3");
        assert_eq!(place.tags["site"], "desk");
        assert_eq!(place.acquired.as_deref(), Some("vm/root"));
        assert_eq!(place.reservation.as_deref(), Some("NSZMPH7YA3"));
        assert_eq!(resources.len(), 2);
        let serial = &resources[1];
        assert_eq!(
            (serial.exporter.as_str(), serial.class.as_str()),
            ("exp1", "NetworkSerialPort")
        );
        assert_eq!(serial.params["host"], "127.0.0.1");
        assert_eq!(serial.params["port"], "4123");
        assert_eq!(serial.params["speed"], "115200");
        assert_eq!(serial.params["protocol"], "rfc2217");
        assert_eq!(resources[0].params["model"], "simplerest");
    }

    #[test]
    fn reservations_and_idle_places_are_read() {
        let text = "Reservation 'TK1':\n  owner: vm/root\n  token: TK1\n  state: waiting\n  filters:\n    main: board=esp32c3\n";
        assert_eq!(
            reservation(text),
            Some(Reservation {
                token: "TK1".into(),
                state: "waiting".into()
            })
        );
        assert_eq!(reservation("nothing"), None);
        let listed = places(
            "Place 'a':\n  matches:\n  acquired: None\n  acquired resources:\nPlace 'b':\n  acquired: h/u\n",
        );
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].holder(), None);
        assert_eq!(listed[1].holder().as_deref(), Some("b (acquired by h/u)"));
    }
}
