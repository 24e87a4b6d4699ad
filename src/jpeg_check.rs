//! Whether a JPEG's compressed data is complete: walks the Huffman-coded data of every scan
//! block by block, without the IDCT, and says whether it ends before the image is whole. A cut file
//! with an end marker appended looks whole to a marker scan and to zune-jpeg (which fills the rest
//! with zero bits, in strict mode too, and for progressive files simply stops refining); this walk
//! sees the data run out.
//!
//! Sequential (SOF0/SOF1) and progressive (SOF2) Huffman JPEGs are walked: that is what cameras
//! and photo tools write. A sequential image is whole once every component has been through a
//! scan; a progressive one once every coefficient of every component has been refined to its
//! last bit. An end marker (or the end of the file) before that, or scan data that runs into
//! one, is a cut file. Anything else (lossless, hierarchical, arithmetic coding, bits that are no
//! code) is left to the decoder.

/// A canonical Huffman table in the form of the JPEG standard's DECODE procedure (F.2.2.3).
#[derive(Clone)]
struct Huffman {
    /// Largest code of each length (−1: none), lengths 1..=16.
    max_code: [i32; 17],
    /// Index into `values` of the first code of each length, minus that code.
    offset: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Option<Self> {
        let mut max_code = [-1i32; 17];
        let mut offset = [0i32; 17];
        let mut code = 0i32;
        let mut k = 0i32;
        for len in 1..=16 {
            let n = i32::from(counts[len - 1]);
            offset[len] = k - code;
            if n > 0 {
                code += n;
                k += n;
                max_code[len] = code - 1;
            }
            if code > (1 << len) {
                return None;
            }
            code <<= 1;
        }
        (k as usize <= values.len()).then_some(Huffman {
            max_code,
            offset,
            values,
        })
    }
}

/// Why a walk stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The data reached a marker or the end of the file: it ran out.
    End,
    /// Bits that are no code of the table: damaged, the decoder decides.
    Bad,
}

/// Reads entropy-coded bits; [`Stop::End`] once the data reaches a marker.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
    byte: u8,
    left: u8,
}

impl Bits<'_> {
    fn bit(&mut self) -> Result<u8, Stop> {
        if self.left == 0 {
            let b = *self.data.get(self.at).ok_or(Stop::End)?;
            if b == 0xFF {
                match self.data.get(self.at + 1) {
                    Some(0x00) => self.at += 2,
                    _ => return Err(Stop::End), // a marker: the data ends here
                }
            } else {
                self.at += 1;
            }
            self.byte = b;
            self.left = 8;
        }
        self.left -= 1;
        Ok((self.byte >> self.left) & 1)
    }

    fn skip(&mut self, n: u8) -> Result<(), Stop> {
        for _ in 0..n {
            self.bit()?;
        }
        Ok(())
    }

    fn symbol(&mut self, table: &Huffman) -> Result<u8, Stop> {
        let mut code = 0i32;
        for len in 1..=16 {
            code = (code << 1) | i32::from(self.bit()?);
            if code <= table.max_code[len] {
                return table
                    .values
                    .get((code + table.offset[len]) as usize)
                    .copied()
                    .ok_or(Stop::Bad);
            }
        }
        Err(Stop::Bad)
    }

    /// Skips to the restart marker that must follow (after the padding bits).
    fn restart(&mut self) -> Result<(), Stop> {
        self.left = 0;
        // A marker may be preceded by fill bytes (0xFF).
        while self.data.get(self.at..self.at + 2) == Some(&[0xFF, 0xFF][..]) {
            self.at += 1;
        }
        match (self.data.get(self.at), self.data.get(self.at + 1)) {
            (Some(0xFF), Some(0xD0..=0xD7)) => {
                self.at += 2;
                Ok(())
            }
            (None, _) | (Some(0xFF), Some(0xD9) | None) => Err(Stop::End),
            _ => Err(Stop::Bad),
        }
    }
}

/// What the walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    /// Every block of every scan is there, and the scans code the whole image.
    Complete,
    /// The data ends before the image is whole: the file was cut.
    Truncated,
    /// Not a JPEG this walk understands, or damaged in another way: the decoder decides.
    Unchecked,
}

/// Most 8×8 blocks (over all components) whose coefficients a progressive walk tracks: 8 bytes
/// each, so at most 16 MiB. 16 megapixels in 4:4:4 are 750 000 blocks.
const MAX_TRACKED_BLOCKS: usize = 1 << 21;

struct Component {
    id: u8,
    h: usize,
    v: usize,
    /// Per zig-zag coefficient, the lowest successive-approximation bit coded so far (`u8::MAX`:
    /// never coded). Whole when every entry is 0.
    coded_to: [u8; 64],
    /// Progressive only: per block of the component, which AC coefficients are non-zero so far
    /// (a refinement scan reads a correction bit for each of them).
    nonzero: Vec<u64>,
}

impl Component {
    fn whole(&self) -> bool {
        self.coded_to.iter().all(|&bit| bit == 0)
    }
}

/// The frame header's facts a scan needs.
struct Frame {
    progressive: bool,
    width: usize,
    height: usize,
    h_max: usize,
    v_max: usize,
    components: Vec<Component>,
}

impl Frame {
    /// Blocks of a component across and down, as a scan of that component alone covers them.
    fn blocks(&self, c: &Component) -> (usize, usize) {
        (
            (self.width * c.h).div_ceil(8 * self.h_max),
            (self.height * c.v).div_ceil(8 * self.v_max),
        )
    }
}

/// One scan's header.
struct Scan<'t> {
    /// Index into the frame's components, with that component's DC and AC tables.
    components: Vec<(usize, Option<&'t Huffman>, Option<&'t Huffman>)>,
    /// Spectral selection start and end, successive approximation high and low bit.
    ss: usize,
    se: usize,
    ah: u8,
    al: u8,
}

/// Walks a JPEG's scans and says whether their data covers the whole image.
pub fn completeness(bytes: &[u8]) -> Completeness {
    walk(bytes).unwrap_or(Completeness::Unchecked)
}

fn walk(bytes: &[u8]) -> Option<Completeness> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut dc: [Option<Huffman>; 4] = Default::default();
    let mut ac: [Option<Huffman>; 4] = Default::default();
    let mut frame: Option<Frame> = None;
    let mut restart_interval = 0usize;
    let mut scans = 0usize;
    // Once a scan has been walked, running out of bytes is a cut file.
    let ran_out = |scans: usize| (scans > 0).then_some(Completeness::Truncated);
    let mut at = 2;
    loop {
        let (Some(&first), Some(&second)) = (bytes.get(at), bytes.get(at + 1)) else {
            return ran_out(scans);
        };
        if first != 0xFF {
            return None;
        }
        let mut marker = second;
        at += 1;
        while marker == 0xFF {
            at += 1;
            let Some(&next) = bytes.get(at) else {
                return ran_out(scans);
            };
            marker = next;
        }
        at += 1;
        if marker == 0xD9 {
            return ran_out(scans); // the end, before the image was whole
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 || marker == 0x00 {
            return None; // a stray marker
        }
        let (Some(&hi), Some(&lo)) = (bytes.get(at), bytes.get(at + 1)) else {
            return ran_out(scans);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(body) = bytes.get(at + 2..at + len.checked_sub(2)? + 2) else {
            return ran_out(scans);
        };
        match marker {
            0xC0..=0xC2 => {
                if frame.is_some() {
                    return None;
                }
                let n = usize::from(*body.get(5)?);
                let mut components = Vec::with_capacity(n);
                for i in 0..n {
                    let c = body.get(6 + 3 * i..9 + 3 * i)?;
                    components.push(Component {
                        id: c[0],
                        h: usize::from(c[1] >> 4),
                        v: usize::from(c[1] & 15),
                        coded_to: [u8::MAX; 64],
                        nonzero: Vec::new(),
                    });
                }
                let f = Frame {
                    progressive: marker == 0xC2,
                    height: usize::from(u16::from_be_bytes([*body.get(1)?, *body.get(2)?])),
                    width: usize::from(u16::from_be_bytes([*body.get(3)?, *body.get(4)?])),
                    h_max: components.iter().map(|c| c.h).max()?,
                    v_max: components.iter().map(|c| c.v).max()?,
                    components,
                };
                if f.width == 0 || f.height == 0 || f.h_max == 0 || f.v_max == 0 || n > 4 {
                    return None;
                }
                if f.progressive {
                    let blocks: usize = f
                        .components
                        .iter()
                        .map(|c| {
                            let (x, y) = f.blocks(c);
                            x * y
                        })
                        .sum();
                    if blocks > MAX_TRACKED_BLOCKS {
                        return None;
                    }
                }
                frame = Some(f);
            }
            // Lossless, hierarchical or arithmetic: not walked.
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
            0xC4 => {
                let mut rest = body;
                while !rest.is_empty() {
                    let class = rest[0] >> 4;
                    let id = usize::from(rest[0] & 15);
                    let counts: [u8; 16] = rest.get(1..17)?.try_into().ok()?;
                    let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    let values = rest.get(17..17 + total)?.to_vec();
                    let table = Huffman::new(&counts, values)?;
                    match class {
                        0 => *dc.get_mut(id)? = Some(table),
                        1 => *ac.get_mut(id)? = Some(table),
                        _ => return None,
                    }
                    rest = &rest[17 + total..];
                }
            }
            0xDD => {
                restart_interval = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
            }
            0xDA => {
                let f = frame.as_mut()?;
                let scan = scan_header(body, f, &dc, &ac)?;
                let data = &bytes[at + len..];
                let end = match walk_scan(data, f, &scan, restart_interval) {
                    Ok(end) => end,
                    Err(Stop::End) => return Some(Completeness::Truncated),
                    Err(Stop::Bad) => return None,
                };
                scans += 1;
                for &(i, _, _) in &scan.components {
                    let coded = &mut f.components[i].coded_to;
                    if f.progressive {
                        coded[scan.ss..=scan.se].fill(scan.al);
                    } else {
                        coded.fill(0);
                    }
                }
                if f.components.iter().all(Component::whole) {
                    return Some(Completeness::Complete);
                }
                // The next marker: past the scan's last byte (an encoder may leave fill bytes).
                let next = data[end..]
                    .windows(2)
                    .position(|w| w[0] == 0xFF && w[1] != 0 && !(0xD0..=0xD7).contains(&w[1]));
                match next {
                    Some(p) => at = at + len + end + p,
                    None => return ran_out(scans),
                }
                continue;
            }
            _ => {}
        }
        at += len;
    }
}

/// Reads a scan header (SOS) against the frame; `None` if it is not one this walk follows.
fn scan_header<'t>(
    body: &[u8],
    frame: &Frame,
    dc: &'t [Option<Huffman>; 4],
    ac: &'t [Option<Huffman>; 4],
) -> Option<Scan<'t>> {
    let n = usize::from(*body.first()?);
    if n == 0 || n > frame.components.len() {
        return None;
    }
    let mut components = Vec::with_capacity(n);
    for i in 0..n {
        let s = body.get(1 + 2 * i..3 + 2 * i)?;
        let index = frame.components.iter().position(|c| c.id == s[0])?;
        let dc_table = dc.get(usize::from(s[1] >> 4))?.as_ref();
        let ac_table = ac.get(usize::from(s[1] & 15))?.as_ref();
        components.push((index, dc_table, ac_table));
    }
    let tail = body.get(1 + 2 * n..4 + 2 * n)?;
    let scan = Scan {
        components,
        ss: usize::from(tail[0]),
        se: usize::from(tail[1]),
        ah: tail[2] >> 4,
        al: tail[2] & 15,
    };
    if frame.progressive {
        let dc_scan = scan.ss == 0;
        let valid = scan.ss <= scan.se
            && scan.se <= 63
            && scan.al <= 13
            && (dc_scan == (scan.se == 0))
            && (dc_scan || n == 1);
        valid.then_some(scan)
    } else {
        Some(scan)
    }
}

/// What one block of a scan holds.
#[derive(Clone, Copy)]
enum Kind {
    Sequential,
    DcFirst,
    DcRefine,
    AcFirst,
    AcRefine,
}

/// Walks one scan's data; on success, how many bytes of `data` it took.
fn walk_scan(
    data: &[u8],
    frame: &mut Frame,
    scan: &Scan,
    restart_interval: usize,
) -> Result<usize, Stop> {
    let kind = match (frame.progressive, scan.ss == 0, scan.ah == 0) {
        (false, _, _) => Kind::Sequential,
        (true, true, true) => Kind::DcFirst,
        (true, true, false) => Kind::DcRefine,
        (true, false, true) => Kind::AcFirst,
        (true, false, false) => Kind::AcRefine,
    };
    let mut bits = Bits {
        data,
        at: 0,
        byte: 0,
        left: 0,
    };
    let mut eobrun = 0u32;
    let mut unit = 0usize;
    let mut restart = |bits: &mut Bits, eobrun: &mut u32| {
        let due = restart_interval > 0 && unit > 0 && unit.is_multiple_of(restart_interval);
        unit += 1;
        if due {
            *eobrun = 0;
            bits.restart()
        } else {
            Ok(())
        }
    };
    if let [(index, dc, ac)] = scan.components[..] {
        // One component: not interleaved, one block per unit, over the component's own blocks.
        let (x, y) = frame.blocks(&frame.components[index]);
        let nonzero = &mut frame.components[index].nonzero;
        if matches!(kind, Kind::AcFirst | Kind::AcRefine) && nonzero.is_empty() {
            nonzero.resize(x * y, 0);
        }
        for b in 0..x * y {
            restart(&mut bits, &mut eobrun)?;
            let mask = nonzero.get_mut(b);
            one_block(&mut bits, kind, dc, ac, scan, &mut eobrun, mask)?;
        }
    } else {
        let mcus_x = frame.width.div_ceil(8 * frame.h_max);
        let mcus_y = frame.height.div_ceil(8 * frame.v_max);
        if matches!(kind, Kind::AcFirst | Kind::AcRefine) {
            return Err(Stop::Bad);
        }
        for _ in 0..mcus_x * mcus_y {
            restart(&mut bits, &mut eobrun)?;
            for &(index, dc, ac) in &scan.components {
                let c = &frame.components[index];
                for _ in 0..c.h * c.v {
                    one_block(&mut bits, kind, dc, ac, scan, &mut eobrun, None)?;
                }
            }
        }
    }
    Ok(bits.at)
}

fn one_block(
    bits: &mut Bits,
    kind: Kind,
    dc: Option<&Huffman>,
    ac: Option<&Huffman>,
    scan: &Scan,
    eobrun: &mut u32,
    mask: Option<&mut u64>,
) -> Result<(), Stop> {
    match kind {
        Kind::Sequential => block(bits, dc.ok_or(Stop::Bad)?, ac.ok_or(Stop::Bad)?),
        Kind::DcFirst => {
            let size = bits.symbol(dc.ok_or(Stop::Bad)?)?;
            bits.skip(size)
        }
        Kind::DcRefine => bits.skip(1),
        Kind::AcFirst => ac_first(
            bits,
            ac.ok_or(Stop::Bad)?,
            scan,
            eobrun,
            mask.ok_or(Stop::Bad)?,
        ),
        Kind::AcRefine => ac_refine(
            bits,
            ac.ok_or(Stop::Bad)?,
            scan,
            eobrun,
            mask.ok_or(Stop::Bad)?,
        ),
    }
}

/// Reads `n` bits as a number (n ≤ 14).
fn number(bits: &mut Bits, n: u8) -> Result<u32, Stop> {
    let mut value = 0u32;
    for _ in 0..n {
        value = (value << 1) | u32::from(bits.bit()?);
    }
    Ok(value)
}

/// A run of end-of-band blocks: 2^r plus r more bits, counting the current block.
fn eob_run(bits: &mut Bits, r: u8) -> Result<u32, Stop> {
    Ok((1u32 << r) + number(bits, r)?)
}

/// The first scan of a band of AC coefficients (G.1.2.2): notes which become non-zero.
fn ac_first(
    bits: &mut Bits,
    ac: &Huffman,
    scan: &Scan,
    eobrun: &mut u32,
    nonzero: &mut u64,
) -> Result<(), Stop> {
    if *eobrun > 0 {
        *eobrun -= 1;
        return Ok(());
    }
    let mut k = scan.ss;
    while k <= scan.se {
        let rs = bits.symbol(ac)?;
        let (r, s) = (rs >> 4, rs & 15);
        if s == 0 {
            if r < 15 {
                *eobrun = eob_run(bits, r)? - 1;
                return Ok(());
            }
            k += 16;
        } else {
            k += usize::from(r);
            if k > scan.se {
                return Err(Stop::Bad);
            }
            bits.skip(s)?;
            *nonzero |= 1 << k;
            k += 1;
        }
    }
    Ok(())
}

/// A refinement scan of a band of AC coefficients (G.1.2.3): a correction bit for each coefficient
/// already non-zero, and new ones of magnitude one.
fn ac_refine(
    bits: &mut Bits,
    ac: &Huffman,
    scan: &Scan,
    eobrun: &mut u32,
    nonzero: &mut u64,
) -> Result<(), Stop> {
    let mut k = scan.ss;
    if *eobrun == 0 {
        while k <= scan.se {
            let rs = bits.symbol(ac)?;
            let (mut r, s) = (i32::from(rs >> 4), rs & 15);
            if s == 0 {
                if r < 15 {
                    *eobrun = eob_run(bits, r as u8)?;
                    break;
                }
            } else {
                if s != 1 {
                    return Err(Stop::Bad);
                }
                bits.skip(1)?; // the sign of the new coefficient
            }
            // Past `r` zero coefficients, reading a correction bit for each non-zero one.
            while k <= scan.se {
                if *nonzero & (1 << k) != 0 {
                    bits.skip(1)?;
                } else {
                    if r == 0 {
                        break;
                    }
                    r -= 1;
                }
                k += 1;
            }
            if s != 0 {
                if k > scan.se {
                    return Err(Stop::Bad);
                }
                *nonzero |= 1 << k;
            }
            k += 1;
        }
    }
    if *eobrun > 0 {
        // The rest of the band has no new coefficient: only correction bits.
        while k <= scan.se {
            if *nonzero & (1 << k) != 0 {
                bits.skip(1)?;
            }
            k += 1;
        }
        *eobrun -= 1;
    }
    Ok(())
}

/// One 8×8 block of a sequential scan: the DC difference, then the AC run-lengths up to
/// end-of-block.
fn block(bits: &mut Bits, dc: &Huffman, ac: &Huffman) -> Result<(), Stop> {
    let size = bits.symbol(dc)?;
    bits.skip(size)?;
    let mut k = 1;
    while k < 64 {
        let rs = bits.symbol(ac)?;
        let (run, size) = (rs >> 4, rs & 15);
        if size == 0 {
            if run != 15 {
                return Ok(()); // end of block
            }
            k += 16;
        } else {
            k += usize::from(run) + 1;
            bits.skip(size)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn china() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/reference/china.jpg"
        ))
        .expect("reference JPEG")
    }

    #[test]
    fn whole_files_are_complete_and_cut_ones_truncated() {
        let whole = china();
        assert_eq!(completeness(&whole), Completeness::Complete);
        for keep in [whole.len() / 3, whole.len() / 2, whole.len() - 200] {
            let mut cut = whole[..keep].to_vec();
            cut.extend_from_slice(&[0xFF, 0xD9]);
            assert_eq!(completeness(&cut), Completeness::Truncated, "cut at {keep}");
        }
    }

    #[test]
    fn every_bundled_photo_is_complete() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let mut stack = vec![root];
        let mut walked = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("list") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "jpg") {
                    let bytes = std::fs::read(&path).expect("read");
                    let found = completeness(&bytes);
                    assert_ne!(found, Completeness::Truncated, "{}", path.display());
                    walked += usize::from(found == Completeness::Complete);
                }
            }
        }
        assert!(walked >= 80, "only {walked} photos were walked");
    }

    fn progressive() -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/progressive");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("tests/data/progressive")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .map(|p| {
                let bytes = std::fs::read(&p).expect("read");
                (p, bytes)
            })
            .collect();
        files.sort();
        assert!(files.len() >= 3, "progressive test files missing");
        files
    }

    #[test]
    fn whole_progressive_files_are_complete() {
        for (path, bytes) in progressive() {
            assert_eq!(bytes.get(..2), Some(&[0xFF, 0xD8][..]));
            assert!(
                bytes.windows(2).any(|w| w == [0xFF, 0xC2]),
                "{}",
                path.display()
            );
            assert_eq!(
                completeness(&bytes),
                Completeness::Complete,
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn progressive_files_cut_anywhere_are_truncated() {
        for (path, whole) in progressive() {
            let first_scan = whole
                .windows(2)
                .position(|w| w == [0xFF, 0xDA])
                .expect("a scan");
            // Every 97th byte from the first scan on, and just before every later scan header.
            let mut cuts: Vec<usize> = (first_scan + 20..whole.len() - 2).step_by(97).collect();
            cuts.extend(
                whole
                    .windows(2)
                    .enumerate()
                    .filter(|(i, w)| *i > first_scan && *w == [0xFF, 0xDA])
                    .map(|(i, _)| i),
            );
            for keep in cuts {
                let mut cut = whole[..keep].to_vec();
                assert_eq!(
                    completeness(&cut),
                    Completeness::Truncated,
                    "{} cut at {keep}",
                    path.display()
                );
                cut.extend_from_slice(&[0xFF, 0xD9]);
                assert_eq!(
                    completeness(&cut),
                    Completeness::Truncated,
                    "{} cut at {keep} with an end marker",
                    path.display()
                );
            }
        }
    }
}
