// usdmap in Rust, without crates: the map step of the benchmark W1
// (bench/w1.yaml) as a flowctl wasm processor module (docs/wasm.md). It
// adds amount_usd (amount in cents / 100) and upper-cases kind; an event
// without a numeric amount goes to the dead-letter output.
//
// Unlike the Go example it keeps the payload's keys in their order and
// appends amount_usd. Build it as a WASI library:
//
//   rustc --edition 2021 --target wasm32-wasip1 --crate-type cdylib -O -o usdmap.wasm usdmap.rs

static mut IN: Vec<u8> = Vec::new();
static mut OUT: Vec<u8> = Vec::new();

#[no_mangle]
pub extern "C" fn flowctl_alloc(size: i32) -> i32 {
    unsafe {
        IN.clear();
        IN.resize(size as usize, 0);
        IN.as_mut_ptr() as i32
    }
}

// skip_string returns the index after the string that starts at i (a '"').
fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

// skip_value returns the index after the JSON value that starts at i.
fn skip_value(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i = skip_string(b, i);
                if depth == 0 {
                    return i;
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b',' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    i
}

// data returns the value of the event line's "data" member, which the
// host writes last: from after "data": to the line's closing brace.
fn data(line: &[u8]) -> Option<&[u8]> {
    let mut i = 1;
    while i < line.len() {
        if line[i] == b'"' {
            let end = skip_string(line, i);
            let is_data = &line[i..end] == b"\"data\"";
            i = end + 1; // the colon
            if is_data {
                return Some(&line[i..line.len() - 1]);
            }
            i = skip_value(line, i);
        }
        i += 1;
    }
    None
}

// map_event appends the mapped payload's event to out, or the reason the
// event fails.
fn map_event(d: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    if d.first() != Some(&b'{') {
        return Err("data is not an object");
    }
    let mut obj: Vec<u8> = Vec::with_capacity(d.len() + 32);
    obj.push(b'{');
    let mut amount: Option<f64> = None;
    let mut i = 1;
    let mut first = true;
    while i < d.len() && d[i] != b'}' {
        if d[i] != b'"' {
            i += 1;
            continue;
        }
        let kend = skip_string(d, i);
        let key = &d[i..kend];
        let vstart = kend + 1;
        let vend = skip_value(d, vstart);
        let val = &d[vstart..vend];
        if !first {
            obj.push(b',');
        }
        first = false;
        obj.extend_from_slice(key);
        obj.push(b':');
        if key == b"\"amount\"" {
            amount = std::str::from_utf8(val).ok().and_then(|s| s.parse::<f64>().ok());
            obj.extend_from_slice(val);
        } else if key == b"\"kind\"" && val.first() == Some(&b'"') {
            obj.extend(val.iter().map(|c| c.to_ascii_uppercase()));
        } else {
            obj.extend_from_slice(val);
        }
        i = vend;
    }
    let amount = amount.ok_or("amount is missing or not a number")?;
    if !first {
        obj.push(b',');
    }
    obj.extend_from_slice(b"\"amount_usd\":");
    obj.extend_from_slice(format!("{}", amount / 100.0).as_bytes());
    obj.push(b'}');
    out.extend_from_slice(b"{\"events\":[{\"data\":");
    out.extend_from_slice(&obj);
    out.extend_from_slice(b"}]}\n");
    Ok(())
}

#[no_mangle]
pub extern "C" fn flowctl_process(ptr: i32, len: i32) -> i64 {
    unsafe {
        let input = std::slice::from_raw_parts(ptr as *const u8, len as usize);
        OUT.clear();
        for line in input.split(|&c| c == b'\n') {
            if line.is_empty() {
                continue;
            }
            let res = match data(line) {
                Some(d) => map_event(d, &mut OUT),
                None => Err("the event has no data"),
            };
            if let Err(msg) = res {
                OUT.extend_from_slice(b"{\"error\":\"");
                OUT.extend_from_slice(msg.as_bytes());
                OUT.extend_from_slice(b"\"}\n");
            }
        }
        ((OUT.as_ptr() as i64) << 32) | OUT.len() as i64
    }
}
