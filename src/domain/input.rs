//! The remote-control input format of channel 2 (docs/protocol.md): what the console's screen
//! view sends and what the reference agent reads. Positions are fractions of the shared screen
//! (0 to 65535), numbers big-endian. The broker relays these frames without reading them.

/// The longest key name an input frame carries, in bytes.
pub const KEY_NAME_MAX: usize = 32;

/// One input event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    PointerMove { x: u16, y: u16 },
    ButtonDown { button: u8, x: u16, y: u16 },
    ButtonUp { button: u8, x: u16, y: u16 },
    Wheel { dx: i16, dy: i16 },
    KeyDown { key: String },
    KeyUp { key: String },
}

/// Why an input frame could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputError {
    Empty,
    UnknownEvent(u8),
    /// Too short or too long for its event.
    Length,
    /// A key name that is empty, over 32 bytes, or not UTF-8.
    BadKey,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Reads the payload of an input frame (the bytes after the channel byte).
pub fn decode(payload: &[u8]) -> Result<InputEvent, InputError> {
    let (&kind, rest) = payload.split_first().ok_or(InputError::Empty)?;
    let exact = |n: usize| {
        if rest.len() == n {
            Ok(())
        } else {
            Err(InputError::Length)
        }
    };
    match kind {
        1 => {
            exact(4)?;
            Ok(InputEvent::PointerMove {
                x: u16_at(rest, 0),
                y: u16_at(rest, 2),
            })
        }
        2 | 3 => {
            exact(5)?;
            let (button, x, y) = (rest[0], u16_at(rest, 1), u16_at(rest, 3));
            Ok(if kind == 2 {
                InputEvent::ButtonDown { button, x, y }
            } else {
                InputEvent::ButtonUp { button, x, y }
            })
        }
        4 => {
            exact(4)?;
            Ok(InputEvent::Wheel {
                dx: u16_at(rest, 0) as i16,
                dy: u16_at(rest, 2) as i16,
            })
        }
        5 | 6 => {
            if rest.is_empty() || rest.len() > KEY_NAME_MAX {
                return Err(InputError::BadKey);
            }
            let key = std::str::from_utf8(rest)
                .map_err(|_| InputError::BadKey)?
                .to_string();
            Ok(if kind == 5 {
                InputEvent::KeyDown { key }
            } else {
                InputEvent::KeyUp { key }
            })
        }
        other => Err(InputError::UnknownEvent(other)),
    }
}

/// Writes an event as an input frame's payload (the inverse of `decode`).
pub fn encode(event: &InputEvent) -> Vec<u8> {
    match event {
        InputEvent::PointerMove { x, y } => {
            let mut b = vec![1];
            b.extend_from_slice(&x.to_be_bytes());
            b.extend_from_slice(&y.to_be_bytes());
            b
        }
        InputEvent::ButtonDown { button, x, y } | InputEvent::ButtonUp { button, x, y } => {
            let kind = if matches!(event, InputEvent::ButtonDown { .. }) {
                2
            } else {
                3
            };
            let mut b = vec![kind, *button];
            b.extend_from_slice(&x.to_be_bytes());
            b.extend_from_slice(&y.to_be_bytes());
            b
        }
        InputEvent::Wheel { dx, dy } => {
            let mut b = vec![4];
            b.extend_from_slice(&dx.to_be_bytes());
            b.extend_from_slice(&dy.to_be_bytes());
            b
        }
        InputEvent::KeyDown { key } | InputEvent::KeyUp { key } => {
            let kind = if matches!(event, InputEvent::KeyDown { .. }) {
                5
            } else {
                6
            };
            let mut b = vec![kind];
            b.extend_from_slice(&key.as_bytes()[..key.len().min(KEY_NAME_MAX)]);
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reads_back_as_written() {
        for event in [
            InputEvent::PointerMove { x: 0, y: 65535 },
            InputEvent::ButtonDown {
                button: 2,
                x: 100,
                y: 200,
            },
            InputEvent::ButtonUp {
                button: 0,
                x: 1,
                y: 2,
            },
            InputEvent::Wheel { dx: -120, dy: 240 },
            InputEvent::KeyDown {
                key: "Enter".into(),
            },
            InputEvent::KeyUp { key: "ä".into() },
        ] {
            assert_eq!(decode(&encode(&event)), Ok(event));
        }
    }

    #[test]
    fn the_console_format_is_read_as_documented() {
        // What web/live.js sends for a left click at the middle of the screen.
        assert_eq!(
            decode(&[2, 0, 0x80, 0x00, 0x80, 0x00]),
            Ok(InputEvent::ButtonDown {
                button: 0,
                x: 32768,
                y: 32768
            })
        );
        assert_eq!(
            decode(&[4, 0xFF, 0x88, 0x00, 0x78]),
            Ok(InputEvent::Wheel { dx: -120, dy: 120 })
        );
    }

    #[test]
    fn malformed_frames_are_refused() {
        assert_eq!(decode(&[]), Err(InputError::Empty));
        assert_eq!(decode(&[9, 1, 2]), Err(InputError::UnknownEvent(9)));
        assert_eq!(decode(&[1, 0, 0, 0]), Err(InputError::Length));
        assert_eq!(decode(&[2, 0, 0, 0, 0, 0, 0]), Err(InputError::Length));
        assert_eq!(decode(&[5]), Err(InputError::BadKey));
        assert_eq!(decode(&[5, 0xFF, 0xFE]), Err(InputError::BadKey));
        let long = [vec![5u8], vec![b'a'; KEY_NAME_MAX + 1]].concat();
        assert_eq!(decode(&long), Err(InputError::BadKey));
    }
}
