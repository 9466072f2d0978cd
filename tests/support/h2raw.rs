//! A deliberately naive HTTP/2 client over cleartext (h2c prior knowledge) that writes raw frames, so tests
//! can do what a well-behaved client library refuses to: open more streams than the server allows, reset
//! streams as fast as they are opened ("rapid reset", CVE-2023-44487), or send an endless header block
//! (CONTINUATION flood, CVE-2024-27316).
//!
//! HPACK: requests are encoded as literals without indexing and without Huffman coding (always valid);
//! responses are not decoded (the tests count frames by type and stream).

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// RST_STREAM / GOAWAY error codes (RFC 9113 §7).
pub const CANCEL: u32 = 0x8;
pub const REFUSED_STREAM: u32 = 0x7;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One received frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY frame.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Encodes one frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn hpack_int(out: &mut Vec<u8>, first: u8, prefix_bits: u32, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// A header block of literal fields without indexing (RFC 7541 §6.2.2), no Huffman coding.
pub fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_int(&mut out, 0, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, 0, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// The header block of a request: pseudo-headers, then `extra`.
pub fn request_block(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (":method", method),
        (":scheme", "http"),
        (":path", path),
        (":authority", "gateway.test"),
    ];
    fields.extend_from_slice(extra);
    header_block(&fields)
}

/// A complete request without a body on `stream` (HEADERS with END_HEADERS | END_STREAM).
pub fn get(stream: u32, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        stream,
        &request_block("GET", path, extra),
    )
}

/// A raw h2c connection.
pub struct H2Conn {
    pub tcp: TcpStream,
    buf: Vec<u8>,
}

impl H2Conn {
    /// Connects, sends the preface and SETTINGS (large windows), waits for the server's SETTINGS and
    /// acknowledges them.
    pub async fn connect(addr: SocketAddr) -> H2Conn {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let mut hello = PREFACE.to_vec();
        // SETTINGS_INITIAL_WINDOW_SIZE = 2^30 so responses never stall on flow control.
        let mut settings = Vec::new();
        settings.extend_from_slice(&4u16.to_be_bytes());
        settings.extend_from_slice(&(1u32 << 30).to_be_bytes());
        hello.extend(frame(SETTINGS, 0, 0, &settings));
        hello.extend(frame(WINDOW_UPDATE, 0, 0, &(1u32 << 30).to_be_bytes()));
        tcp.write_all(&hello).await.expect("write preface");
        let mut conn = H2Conn {
            tcp,
            buf: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let f = conn
                .next_frame(deadline)
                .await
                .expect("server SETTINGS within 5 s");
            if f.kind == SETTINGS && f.flags & ACK == 0 {
                conn.send(&frame(SETTINGS, ACK, 0, &[])).await;
                return conn;
            }
        }
    }

    /// Writes raw bytes; errors (the server closed) are ignored, the next read tells.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).await.is_ok()
    }

    /// The next frame, or None when the connection closed or `deadline` passed. Answers PINGs.
    pub async fn next_frame(&mut self, deadline: Instant) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes([
                            self.buf[5],
                            self.buf[6],
                            self.buf[7],
                            self.buf[8],
                        ]) & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    if f.kind == PING && f.flags & ACK == 0 {
                        let pong = frame(PING, ACK, 0, &f.payload);
                        let _ = self.tcp.write_all(&pong).await;
                    }
                    return Some(f);
                }
            }
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads frames until the connection closes or `limit` passes.
    pub async fn drain(&mut self, limit: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        while let Some(f) = self.next_frame(deadline).await {
            out.push(f);
        }
        out
    }
}
