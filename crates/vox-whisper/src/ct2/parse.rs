//! Parsing the header and variable index of a mapped `model.bin` (see the format in [`super`]).

use std::collections::HashMap;
use std::path::PathBuf;

use memmap2::Mmap;

use super::{CURRENT_BINARY_VERSION, Ct2Dtype, Ct2Error, Ct2Model, Ct2Var, convert};

/// Bounds-checked little-endian reader over the mapped file.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A string: `None` if truncated, `Some(Err(()))` if malformed.
    fn string(&mut self) -> Option<Result<&'a str, ()>> {
        let len = self.u16()? as usize;
        if len == 0 {
            return Some(Err(()));
        }
        let b = self.take(len)?;
        Some(std::str::from_utf8(&b[..len - 1]).map_err(|_| ()))
    }
}

impl Ct2Model {
    pub(super) fn parse(path: PathBuf, mmap: Mmap) -> Result<Self, Ct2Error> {
        let truncated = |at: String| Ct2Error::Truncated {
            path: path.clone(),
            at,
        };
        let malformed = |what: String| Ct2Error::Malformed {
            path: path.clone(),
            what,
        };
        let mut c = Cursor {
            data: &mmap,
            pos: 0,
        };

        let binary_version = c.u32().ok_or_else(|| truncated("binary version".into()))?;
        if !(1..=CURRENT_BINARY_VERSION).contains(&binary_version) {
            return Err(Ct2Error::NotCt2 {
                path: path.clone(),
                version: binary_version,
            });
        }
        let (spec, revision) = if binary_version >= 2 {
            let spec = c.string().ok_or_else(|| truncated("spec name".into()))?;
            let spec = spec
                .map_err(|()| malformed("spec name".into()))?
                .to_string();
            let revision = c.u32().ok_or_else(|| truncated("spec revision".into()))?;
            (spec, revision)
        } else {
            (String::new(), 1)
        };

        let count = c.u32().ok_or_else(|| truncated("variable count".into()))? as usize;
        // Each variable takes at least 8 bytes, so a huge count in a small file is caught early.
        let mut vars = Vec::with_capacity(count.min(mmap.len() / 8));
        let mut index = HashMap::with_capacity(vars.capacity());
        for i in 0..count {
            let name = c
                .string()
                .ok_or_else(|| truncated(format!("variable #{i}")))?;
            let name = name.map_err(|()| malformed(format!("name of variable #{i}")))?;
            let at = || truncated(format!("variable {name}"));
            let rank = c.u8().ok_or_else(at)? as usize;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(c.u32().ok_or_else(at)? as usize);
            }
            let (dtype, len) = if binary_version >= 4 {
                let id = c.u8().ok_or_else(at)?;
                let dtype = Ct2Dtype::from_id(id).ok_or_else(|| Ct2Error::UnknownDtype {
                    path: path.clone(),
                    id,
                    name: name.to_string(),
                })?;
                (dtype, c.u32().ok_or_else(at)? as usize)
            } else {
                let item = c.u8().ok_or_else(at)?;
                let dtype = match item {
                    4 => Ct2Dtype::F32,
                    2 => Ct2Dtype::I16,
                    1 => Ct2Dtype::I8,
                    _ => {
                        return Err(Ct2Error::UnknownDtype {
                            path: path.clone(),
                            id: item,
                            name: name.to_string(),
                        });
                    }
                };
                (dtype, (c.u32().ok_or_else(at)? as usize) * item as usize)
            };
            let expected = shape
                .iter()
                .try_fold(dtype.size(), |a, &d| a.checked_mul(d));
            if expected != Some(len) {
                return Err(Ct2Error::BadSize {
                    path: path.clone(),
                    name: name.to_string(),
                    shape,
                    dtype,
                    expected: expected.unwrap_or(usize::MAX),
                    got: len,
                });
            }
            let offset = c.pos;
            c.take(len).ok_or_else(at)?;
            index.insert(name.to_string(), vars.len());
            vars.push((
                name.to_string(),
                Ct2Var {
                    shape,
                    dtype,
                    offset,
                    len,
                },
            ));
        }

        let mut aliases = Vec::new();
        let mut alias_index = HashMap::new();
        if binary_version >= 3 {
            let n = c.u32().ok_or_else(|| truncated("alias count".into()))?;
            for i in 0..n {
                let mut string = |what: &str| {
                    c.string()
                        .ok_or_else(|| truncated(format!("alias #{i}")))?
                        .map_err(|()| malformed(format!("{what} of alias #{i}")))
                };
                let alias = string("name")?;
                let target = string("target")?;
                // Like CTranslate2, aliases resolve against what is registered so far; unknown targets are skipped.
                match index.get(target).or_else(|| alias_index.get(target)) {
                    Some(&t) => {
                        alias_index.insert(alias.to_string(), t);
                        aliases.push((alias.to_string(), t));
                    }
                    None => {
                        tracing::warn!(path = %path.display(), alias, target, "alias to an unknown variable")
                    }
                }
            }
        }
        if c.pos != mmap.len() {
            tracing::warn!(path = %path.display(), extra = mmap.len() - c.pos, "trailing bytes after the model index");
        }

        let mut scale_copies = HashMap::new();
        for (i, (name, v)) in vars.iter().enumerate() {
            let data = &mmap[v.offset..v.offset + v.len];
            let aligned = bytemuck::try_cast_slice::<u8, f32>(data).is_ok();
            if name.ends_with("_scale")
                && v.dtype.is_float()
                && (v.dtype != Ct2Dtype::F32 || !aligned)
            {
                scale_copies.insert(i, convert::floats_to_f32(data, v.dtype).into_owned());
            }
        }

        Ok(Self {
            path,
            mmap,
            binary_version,
            spec,
            revision,
            vars,
            index,
            aliases,
            alias_index,
            scale_copies,
        })
    }
}
