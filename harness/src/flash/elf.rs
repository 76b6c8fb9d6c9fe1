//! ESP-IDF app ELF files: a structural check that says where a broken file is broken,
//! then espflash's conversion into bootloader, partition table and app image.

use espflash::flasher::{FlashData, FlashSettings};
use espflash::image_format::idf::IdfBootloaderFormat;
use espflash::target::XtalFrequency;

use super::esp32::espflash_chip;
use super::plan::Region;
use crate::image::Chip;

pub const MAGIC: &[u8] = b"\x7fELF";
const HEADER_LEN: usize = 52;
const PROGRAM_HEADER_LEN: usize = 32;
const SECTION_HEADER_LEN: usize = 40;
const EM_XTENSA: u16 = 94;
const EM_RISCV: u16 = 243;
const SHT_NULL: u32 = 0;
const SHT_NOBITS: u32 = 8;
const PT_LOAD: u32 = 1;

/// Checks the ELF structure: the header, and that every table and every section's data
/// lies inside the file. Errors name the byte offset of the field that is wrong.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "byte 0x{:x}: the file ends inside the {HEADER_LEN}-byte ELF header",
            bytes.len()
        ));
    }
    if bytes[4] != 1 {
        return Err(format!(
            "byte 0x4: ELF class {} — ESP images come from 32-bit ELF files (class 1)",
            bytes[4]
        ));
    }
    if bytes[5] != 1 {
        return Err(format!(
            "byte 0x5: data encoding {} — ESP chips are little-endian (1)",
            bytes[5]
        ));
    }
    let elf = Elf { bytes };
    let program_headers = elf.table(0x1C, 0x2A, 0x2C, PROGRAM_HEADER_LEN, "program header")?;
    let section_headers = elf.table(0x20, 0x2E, 0x30, SECTION_HEADER_LEN, "section header")?;
    if section_headers.is_empty() {
        return Err(
            "byte 0x30: the ELF has no section headers; an ESP-IDF app image is built from its sections"
                .to_string(),
        );
    }
    let shstrndx = usize::from(elf.u16(0x32));
    if shstrndx >= section_headers.len() {
        return Err(format!(
            "byte 0x32: section name table index {shstrndx}, but there are only {} sections",
            section_headers.len()
        ));
    }
    for (index, &at) in section_headers.iter().enumerate() {
        let kind = elf.u32(at + 4);
        if kind != SHT_NULL && kind != SHT_NOBITS {
            elf.within(at + 16, at + 20, &format!("section {index}'s data"))?;
        }
    }
    for (index, &at) in program_headers.iter().enumerate() {
        if elf.u32(at) == PT_LOAD {
            elf.within(at + 4, at + 16, &format!("segment {index}'s data"))?;
        }
    }
    Ok(())
}

/// Bootloader, partition table and app for `chip`, as espflash builds them.
pub fn regions(bytes: &[u8], chip: Chip) -> Result<Vec<Region>, String> {
    let machine = u16::from_le_bytes([bytes[0x12], bytes[0x13]]);
    let (expected, isa) = match chip {
        Chip::Esp32c3 => (EM_RISCV, "RISC-V"),
        Chip::Esp32 => (EM_XTENSA, "Xtensa"),
        Chip::Esp8266 => {
            return Err(
                "ELF files are flashed to the ESP32 family; for an ESP8266 convert it first \
                 (esptool elf2image) and flash the .bin"
                    .to_string(),
            )
        }
    };
    if machine != expected {
        let found = match machine {
            EM_RISCV => "RISC-V",
            EM_XTENSA => "Xtensa",
            _ => "unknown",
        };
        return Err(format!(
            "byte 0x12: machine {machine} ({found}), but the board is an {} ({isa}, machine {expected}): \
             refusing to write it",
            chip.name()
        ));
    }
    let target =
        espflash_chip(chip).ok_or_else(|| format!("{} has no ELF support", chip.name()))?;
    let flash_data = FlashData::new(
        FlashSettings::default(),
        0,
        None,
        target,
        XtalFrequency::_40Mhz,
    );
    let format = IdfBootloaderFormat::new(bytes, &flash_data, None, None, None, None)
        .map_err(|e| format!("not a usable ESP-IDF app: {e}"))?;
    Ok(format
        .flash_segments()
        .map(|segment| Region {
            addr: segment.addr,
            data: segment.data.into_owned(),
        })
        .collect())
}

/// Little-endian field reads on a file whose header length was checked.
struct Elf<'a> {
    bytes: &'a [u8],
}

impl Elf<'_> {
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    fn u32(&self, at: usize) -> u32 {
        let b = &self.bytes[at..at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The offsets of a table's entries, once the table is known to lie in the file.
    fn table(
        &self,
        offset_field: usize,
        size_field: usize,
        count_field: usize,
        entry_len: usize,
        what: &str,
    ) -> Result<Vec<usize>, String> {
        let count = usize::from(self.u16(count_field));
        if count == 0 {
            return Ok(Vec::new());
        }
        let size = usize::from(self.u16(size_field));
        if size != entry_len {
            return Err(format!(
                "byte 0x{size_field:x}: {what} entries of {size} bytes, but 32-bit ELF ones are {entry_len}"
            ));
        }
        let start = self.u32(offset_field) as usize;
        let end = start.saturating_add(count * size);
        if end > self.bytes.len() {
            return Err(format!(
                "byte 0x{offset_field:x}: the {what} table (0x{start:x}, {count} × {size} bytes) ends at \
                 0x{end:x}, past the end of the file (0x{:x} bytes)",
                self.bytes.len()
            ));
        }
        Ok((0..count).map(|i| start + i * size).collect())
    }

    /// Checks that `offset_field .. + size_field` (file offset and length) lies in the file.
    fn within(&self, offset_field: usize, size_field: usize, what: &str) -> Result<(), String> {
        let start = self.u32(offset_field) as usize;
        let end = start.saturating_add(self.u32(size_field) as usize);
        if end > self.bytes.len() {
            return Err(format!(
                "byte 0x{offset_field:x}: {what} (0x{start:x}..0x{end:x}) runs past the end of the \
                 file (0x{:x} bytes)",
                self.bytes.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header-only ELF32 for RISC-V with one empty section table slot.
    fn minimal() -> Vec<u8> {
        let mut elf = vec![0u8; HEADER_LEN + SECTION_HEADER_LEN];
        elf[..4].copy_from_slice(MAGIC);
        elf[4] = 1;
        elf[5] = 1;
        elf[0x12..0x14].copy_from_slice(&EM_RISCV.to_le_bytes());
        elf[0x20..0x24].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        elf[0x2E..0x30].copy_from_slice(&(SECTION_HEADER_LEN as u16).to_le_bytes());
        elf[0x30..0x32].copy_from_slice(&1u16.to_le_bytes());
        elf
    }

    #[test]
    fn a_well_formed_skeleton_passes_the_structure_check() {
        assert_eq!(check(&minimal()), Ok(()));
    }

    #[test]
    fn a_truncated_header_is_located() {
        let error = check(&minimal()[..20]).unwrap_err();
        assert!(
            error.starts_with("byte 0x14: the file ends inside"),
            "{error}"
        );
    }

    #[test]
    fn a_64_bit_elf_is_refused_at_its_class_byte() {
        let mut elf = minimal();
        elf[4] = 2;
        assert!(check(&elf)
            .unwrap_err()
            .starts_with("byte 0x4: ELF class 2"));
    }

    #[test]
    fn a_section_table_past_the_end_is_located() {
        let mut elf = minimal();
        elf[0x20..0x24].copy_from_slice(&0x1000u32.to_le_bytes());
        let error = check(&elf).unwrap_err();
        assert!(
            error.starts_with("byte 0x20: the section header table (0x1000"),
            "{error}"
        );
    }

    #[test]
    fn section_data_past_the_end_is_located() {
        let mut elf = minimal();
        let header = HEADER_LEN;
        elf[header + 4..header + 8].copy_from_slice(&1u32.to_le_bytes()); // PROGBITS
        elf[header + 16..header + 20].copy_from_slice(&0x40u32.to_le_bytes());
        elf[header + 20..header + 24].copy_from_slice(&0x1000u32.to_le_bytes());
        let error = check(&elf).unwrap_err();
        assert!(
            error.starts_with(&format!(
                "byte 0x{:x}: section 0's data (0x40..0x1040)",
                header + 16
            )),
            "{error}"
        );
    }

    #[test]
    fn an_elf_for_another_architecture_is_refused() {
        let error = regions(&minimal(), Chip::Esp32).unwrap_err();
        assert!(
            error.contains("machine 243 (RISC-V), but the board is an esp32"),
            "{error}"
        );
        assert!(regions(&minimal(), Chip::Esp8266)
            .unwrap_err()
            .contains("elf2image"));
    }
}
