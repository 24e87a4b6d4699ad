//! Whether a JPEG's compressed data is complete: walks the Huffman-coded data of a sequential
//! (baseline) JPEG block by block, without the IDCT, and says whether it ends before the last
//! block. A cut file with an end marker appended looks whole to a marker scan and to zune-jpeg
//! (which fills the rest with zero bits); this walk sees the data run out.
//!
//! Only sequential Huffman JPEGs (SOF0/SOF1) whose first scan holds every component are walked:
//! that is what cameras and nearly all photos are. Anything else (progressive, several scans,
//! arithmetic coding) is left to the decoder, which reports data that ends at the end of the file.

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
    /// Every block of the scan is there.
    Complete,
    /// The data ends before the last block: the file was cut.
    Truncated,
    /// Not a JPEG this walk understands, or damaged in another way: the decoder decides.
    Unchecked,
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    dc: usize,
    ac: usize,
}

/// Walks a JPEG's first scan and says whether its data covers every block.
pub fn completeness(bytes: &[u8]) -> Completeness {
    walk(bytes).unwrap_or(Completeness::Unchecked)
}

fn walk(bytes: &[u8]) -> Option<Completeness> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut dc: [Option<Huffman>; 4] = Default::default();
    let mut ac: [Option<Huffman>; 4] = Default::default();
    let mut components: Vec<Component> = Vec::new();
    let (mut width, mut height) = (0usize, 0usize);
    let mut restart_interval = 0usize;
    let mut at = 2;
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        let mut marker = *bytes.get(at + 1)?;
        at += 1;
        while marker == 0xFF {
            at += 1;
            marker = *bytes.get(at)?;
        }
        at += 1;
        if marker == 0xD9 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            return None; // no scan before the end, or a stray marker
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
        let body = bytes.get(at + 2..at + len.checked_sub(2)? + 2)?;
        match marker {
            0xC0 | 0xC1 => {
                height = usize::from(u16::from_be_bytes([*body.get(1)?, *body.get(2)?]));
                width = usize::from(u16::from_be_bytes([*body.get(3)?, *body.get(4)?]));
                let n = usize::from(*body.get(5)?);
                for i in 0..n {
                    let c = body.get(6 + 3 * i..9 + 3 * i)?;
                    components.push(Component {
                        id: c[0],
                        h: usize::from(c[1] >> 4),
                        v: usize::from(c[1] & 15),
                        dc: 0,
                        ac: 0,
                    });
                }
            }
            // Progressive, lossless, hierarchical or arithmetic: not walked.
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
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
                let n = usize::from(*body.first()?);
                if components.is_empty() || n != components.len() {
                    return None; // a scan of some components only: several scans
                }
                for i in 0..n {
                    let s = body.get(1 + 2 * i..3 + 2 * i)?;
                    let c = components.iter_mut().find(|c| c.id == s[0])?;
                    c.dc = usize::from(s[1] >> 4);
                    c.ac = usize::from(s[1] & 15);
                }
                let data = &bytes[at + len..];
                return scan(data, &components, &dc, &ac, width, height, restart_interval);
            }
            _ => {}
        }
        at += len;
    }
}

fn scan(
    data: &[u8],
    components: &[Component],
    dc: &[Option<Huffman>; 4],
    ac: &[Option<Huffman>; 4],
    width: usize,
    height: usize,
    restart_interval: usize,
) -> Option<Completeness> {
    let h_max = components.iter().map(|c| c.h).max()?;
    let v_max = components.iter().map(|c| c.v).max()?;
    if width == 0 || height == 0 || h_max == 0 || v_max == 0 {
        return None;
    }
    let (mcus_x, mcus_y) = if components.len() == 1 {
        // A single component is not interleaved: one block per unit.
        let c = &components[0];
        (
            (width * c.h).div_ceil(8 * h_max),
            (height * c.v).div_ceil(8 * v_max),
        )
    } else {
        (width.div_ceil(8 * h_max), height.div_ceil(8 * v_max))
    };
    let blocks_per_mcu: Vec<(usize, &Huffman, &Huffman)> = components
        .iter()
        .map(|c| {
            let n = if components.len() == 1 { 1 } else { c.h * c.v };
            Some((n, dc.get(c.dc)?.as_ref()?, ac.get(c.ac)?.as_ref()?))
        })
        .collect::<Option<_>>()?;
    let mut bits = Bits {
        data,
        at: 0,
        byte: 0,
        left: 0,
    };
    let total = mcus_x * mcus_y;
    let walked = (|| {
        for mcu in 0..total {
            if restart_interval > 0 && mcu > 0 && mcu % restart_interval == 0 {
                bits.restart()?;
            }
            for &(n, dc_table, ac_table) in &blocks_per_mcu {
                for _ in 0..n {
                    block(&mut bits, dc_table, ac_table)?;
                }
            }
        }
        Ok(())
    })();
    match walked {
        Ok(()) => Some(Completeness::Complete),
        Err(Stop::End) => Some(Completeness::Truncated),
        Err(Stop::Bad) => None,
    }
}

/// One 8×8 block: the DC difference, then the AC run-lengths up to end-of-block.
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
}
