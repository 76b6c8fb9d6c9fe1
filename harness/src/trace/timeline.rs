//! A readable, one-line-per-event rendering of a trace (`hil trace show`, failure reports).

use anstyle::{AnsiColor, Style};

use super::{CloseReason, Event, EventBody, Packet};

/// One event as timeline columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Milliseconds since the first event shown.
    pub ms: f64,
    /// Who: `#3 phone`, `broker`, ...
    pub who: String,
    /// `->` towards the broker, `<-` towards the client, blank otherwise.
    pub arrow: &'static str,
    /// What kind of thing happened: `publish`, `closed`, ...
    pub what: String,
    pub detail: String,
    pub tone: Tone,
}

/// The colour family of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Message,
    Session,
    Problem,
}

impl Tone {
    fn style(self) -> Style {
        match self {
            Tone::Plain => Style::new(),
            Tone::Message => AnsiColor::Cyan.on_default(),
            Tone::Session => AnsiColor::Green.on_default(),
            Tone::Problem => AnsiColor::Red.on_default().bold(),
        }
    }
}

impl Row {
    pub fn of(event: &Event, origin_us: u64) -> Row {
        let ms = event.t_us.saturating_sub(origin_us) as f64 / 1000.0;
        let who = |conn: u64, client: &Option<String>| match client {
            Some(client) => format!("#{conn} {client}"),
            None => format!("#{conn}"),
        };
        let row = |who: String, arrow, what: &str, detail: String, tone| Row {
            ms,
            who,
            arrow,
            what: what.to_string(),
            detail,
            tone,
        };
        match &event.body {
            EventBody::TraceStarted {
                wall_clock,
                hil_version,
            } => row(
                "hil".into(),
                "",
                "started",
                format!("{wall_clock} (hil {hil_version})"),
                Tone::Plain,
            ),
            EventBody::Broker { action, addr } => row(
                "broker".into(),
                "",
                &format!("{action:?}").to_lowercase(),
                format!("mqtt://{addr}"),
                Tone::Session,
            ),
            EventBody::ConnOpened { conn, peer } => row(
                who(*conn, &None),
                "",
                "open",
                format!("from {peer}"),
                Tone::Plain,
            ),
            EventBody::ConnRefused { peer, reason } => row(
                "broker".into(),
                "",
                "refused",
                format!("{peer}: {reason}"),
                Tone::Problem,
            ),
            EventBody::Mqtt {
                conn,
                client,
                dir,
                packet,
            } => {
                let tone = match packet {
                    Packet::Publish { .. } => Tone::Message,
                    Packet::Connect { .. } | Packet::Connack { .. } | Packet::Disconnect { .. } => {
                        Tone::Session
                    }
                    _ => Tone::Plain,
                };
                let arrow = match dir {
                    super::Direction::ToBroker => "->",
                    super::Direction::ToClient => "<-",
                };
                row(
                    who(*conn, client),
                    arrow,
                    packet.name(),
                    packet_detail(packet),
                    tone,
                )
            }
            EventBody::Malformed {
                conn,
                client,
                dir,
                reason,
                excerpt_hex,
            } => row(
                who(*conn, client),
                match dir {
                    super::Direction::ToBroker => "->",
                    super::Direction::ToClient => "<-",
                },
                "malformed",
                format!("{reason} [{excerpt_hex}]"),
                Tone::Problem,
            ),
            EventBody::Serial { board, line } => {
                row(board.clone(), "", "serial", line.clone(), Tone::Plain)
            }
            EventBody::Relay { board, on } => row(
                board.clone(),
                "",
                "relay",
                if *on { "on" } else { "off" }.into(),
                Tone::Message,
            ),
            EventBody::BoardState { board, state } => {
                row(board.clone(), "", "state", state.clone(), Tone::Session)
            }
            EventBody::BoardWarning { board, warning } => {
                row(board.clone(), "", "warning", warning.clone(), Tone::Problem)
            }
            EventBody::Board { board, change } => row(
                board.clone(),
                "",
                "board",
                format!("{change:?}").to_lowercase(),
                Tone::Session,
            ),
            EventBody::Fault {
                fault,
                target,
                detail,
            } => row(
                target.clone().unwrap_or_else(|| "broker".into()),
                "",
                "fault",
                format!("{fault} {detail}"),
                Tone::Session,
            ),
            EventBody::StepStarted {
                step, name, line, ..
            } => row(
                "step".into(),
                "",
                &format!("{}", step + 1),
                format!("{name} (line {line})"),
                Tone::Plain,
            ),
            EventBody::StepFinished {
                step,
                name,
                passed,
                detail,
            } => row(
                "step".into(),
                "",
                &format!("{}", step + 1),
                match detail {
                    Some(detail) => format!("{name} failed: {detail}"),
                    None => format!("{name} {}", if *passed { "passed" } else { "failed" }),
                },
                if *passed { Tone::Plain } else { Tone::Problem },
            ),
            EventBody::ConnClosed {
                conn,
                client,
                reason,
                detail,
            } => {
                let tone = match reason {
                    CloseReason::Clean => Tone::Plain,
                    _ => Tone::Problem,
                };
                let reason = format!("{reason:?}");
                let detail = match detail {
                    Some(detail) => format!("{reason}: {detail}"),
                    None => reason,
                };
                row(who(*conn, client), "", "closed", detail, tone)
            }
        }
    }

    /// The row as text, with colour when `styled`.
    pub fn render(&self, who_width: usize, styled: bool) -> String {
        let style = if styled {
            self.tone.style()
        } else {
            Style::new()
        };
        format!(
            "{ms:>10.3} ms  {who:<who_width$}  {arrow:<2}  {style}{what:<11}{style:#} {detail}",
            ms = self.ms,
            who = self.who,
            arrow = self.arrow,
            what = self.what,
            detail = self.detail,
        )
        .trim_end()
        .to_string()
    }
}

/// The client id an event belongs to, if any.
pub fn client_of(event: &Event) -> Option<&str> {
    match &event.body {
        EventBody::Mqtt { client, .. }
        | EventBody::Malformed { client, .. }
        | EventBody::ConnClosed { client, .. } => client.as_deref(),
        _ => None,
    }
}

/// The board an event belongs to, if any: its serial lines, relay, state, warnings and
/// what was done to it.
pub fn board_of(event: &Event) -> Option<&str> {
    match &event.body {
        EventBody::Serial { board, .. }
        | EventBody::Relay { board, .. }
        | EventBody::BoardState { board, .. }
        | EventBody::BoardWarning { board, .. }
        | EventBody::Board { board, .. } => Some(board),
        _ => None,
    }
}

/// Which events of a trace to show (`hil trace show`); every one when all are empty.
#[derive(Debug, Clone, Default)]
pub struct TraceFilter {
    /// Only this client's events.
    pub client: Option<String>,
    /// Only this board's events.
    pub board: Option<String>,
    /// Only rows of these kinds (the timeline's third column: `publish`, `serial`, ...).
    pub kinds: Vec<String>,
    /// Only publishes whose topic matches this filter.
    pub topic: Option<String>,
}

impl TraceFilter {
    /// Why the filter cannot be meant for this trace: a client, board or kind it does
    /// not hold, told with the ones it does.
    pub fn check(&self, events: &[Event]) -> Result<(), String> {
        let origin = events.first().map_or(0, |e| e.t_us);
        let named = |wanted: &Option<String>, what: &str, of: &dyn Fn(&Event) -> Option<String>| {
            let Some(wanted) = wanted else {
                return Ok(());
            };
            let mut present: Vec<String> = events.iter().filter_map(of).collect();
            present.sort();
            present.dedup();
            if present.contains(wanted) {
                return Ok(());
            }
            let present = if present.is_empty() {
                format!("the trace has no {what}s")
            } else {
                format!("the trace's {what}s are: {}", present.join(", "))
            };
            Err(format!("no {what} {wanted:?} in this trace; {present}"))
        };
        named(&self.client, "client", &|e| {
            client_of(e).map(str::to_string)
        })?;
        named(&self.board, "board", &|e| board_of(e).map(str::to_string))?;
        for kind in &self.kinds {
            let kind = Some(kind.clone());
            named(&kind, "kind", &|e| Some(Row::of(e, origin).what))?;
        }
        Ok(())
    }

    pub fn keeps(&self, event: &Event, row: &Row) -> bool {
        let wanted = |filter: &Option<String>, value: Option<&str>| {
            filter.as_deref().is_none_or(|wanted| value == Some(wanted))
        };
        let topic = || match (&self.topic, &event.body) {
            (None, _) => true,
            (
                Some(filter),
                EventBody::Mqtt {
                    packet: Packet::Publish { topic, .. },
                    ..
                },
            ) => rumqttc::matches(topic, filter),
            _ => false,
        };
        wanted(&self.client, client_of(event))
            && wanted(&self.board, board_of(event))
            && (self.kinds.is_empty() || self.kinds.contains(&row.what))
            && topic()
    }
}

/// Renders rows with the `who` column as wide as its widest entry.
pub fn render_rows(rows: &[Row], styled: bool) -> Vec<String> {
    let width = rows
        .iter()
        .map(|row| row.who.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter().map(|row| row.render(width, styled)).collect()
}

fn packet_detail(packet: &Packet) -> String {
    match packet {
        Packet::Connect {
            client_id,
            protocol,
            clean_session,
            keep_alive,
            will,
            username,
        } => {
            let mut text = format!(
                "client_id={client_id:?} v{} clean={clean_session} keep_alive={keep_alive}s",
                if *protocol == 5 { "5" } else { "3.1.1" }
            );
            if let Some(will) = will {
                text += &format!(
                    " will={} {} qos={} retain={}",
                    will.topic, will.payload, will.qos, will.retain
                );
            }
            if let Some(username) = username {
                text += &format!(" user={username}");
            }
            text
        }
        Packet::Connack {
            session_present,
            code,
        } => format!("{code} session_present={session_present}"),
        Packet::Publish {
            topic,
            payload,
            qos,
            retain,
            dup,
            pkid,
        } => {
            let mut text = format!("{topic} {payload} qos={qos}");
            if let Some(pkid) = pkid {
                text += &format!(" pkid={pkid}");
            }
            if *retain {
                text += " retain";
            }
            if *dup {
                text += " dup";
            }
            text
        }
        Packet::Puback { pkid, code } | Packet::Pubrec { pkid, code } if !code.is_success() => {
            format!("{code} pkid={pkid}")
        }
        Packet::Puback { pkid, .. }
        | Packet::Pubrec { pkid, .. }
        | Packet::Pubrel { pkid }
        | Packet::Pubcomp { pkid }
        | Packet::Unsuback { pkid } => {
            format!("pkid={pkid}")
        }
        Packet::Subscribe { pkid, filters } => {
            let filters: Vec<String> = filters
                .iter()
                .map(|f| format!("{} qos={}", f.filter, f.qos))
                .collect();
            format!("{} pkid={pkid}", filters.join(", "))
        }
        Packet::Suback { pkid, codes } => format!(
            "{} pkid={pkid}",
            codes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Packet::Unsubscribe { pkid, filters } => format!("{} pkid={pkid}", filters.join(", ")),
        Packet::Disconnect { code } if !code.is_normal() => code.to_string(),
        Packet::Pingreq | Packet::Pingresp | Packet::Disconnect { .. } | Packet::Auth => {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Direction, Payload};

    #[test]
    fn publish_rows_show_topic_payload_and_flags_in_aligned_columns() {
        let event = Event {
            seq: 2,
            t_us: 12_345,
            body: EventBody::Mqtt {
                conn: 3,
                client: Some("phone".into()),
                dir: Direction::ToBroker,
                packet: Packet::Publish {
                    topic: "living_room_lights".into(),
                    payload: Payload::from("on"),
                    qos: 1,
                    retain: true,
                    dup: false,
                    pkid: Some(7),
                },
            },
        };
        let row = Row::of(&event, 0);
        assert_eq!(
            row.render(10, false),
            "    12.345 ms  #3 phone    ->  publish     living_room_lights \"on\" qos=1 pkid=7 retain"
        );
        assert!(
            row.render(10, true).contains("\u{1b}["),
            "styled output carries colour codes"
        );
    }
}
