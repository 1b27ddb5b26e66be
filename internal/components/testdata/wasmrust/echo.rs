// A wasm processor module in Rust, without crates (it is built with
// rustc alone): each event becomes one event of type rust.seen with the
// same data. An event whose data holds "poison" fails with a reason; one
// whose data holds "abort" traps (unreachable), as a Rust panic does.

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

// data returns the value of the top-level "data" member of one event line
// (the host writes it last).
fn data(line: &[u8]) -> &[u8] {
    let (mut depth, mut in_str, mut esc) = (0, false, false);
    let key = b"\"data\":";
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if in_str {
            if esc { esc = false } else if c == b'\\' { esc = true } else if c == b'"' { in_str = false }
        } else if c == b'{' || c == b'[' {
            depth += 1
        } else if c == b'}' || c == b']' {
            depth -= 1
        } else if c == b'"' {
            if depth == 1 && line[i..].starts_with(key) {
                return &line[i + key.len()..line.len() - 1];
            }
            in_str = true
        }
        i += 1
    }
    b"null"
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
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
            let d = data(line);
            if contains(d, b"abort") {
                std::process::abort();
            }
            if contains(d, b"poison") {
                OUT.extend_from_slice(b"{\"error\":\"poison event\"}\n");
                continue;
            }
            OUT.extend_from_slice(b"{\"events\":[{\"type\":\"rust.seen\",\"data\":");
            OUT.extend_from_slice(d);
            OUT.extend_from_slice(b"}]}\n");
        }
        ((OUT.as_ptr() as i64) << 32) | OUT.len() as i64
    }
}
