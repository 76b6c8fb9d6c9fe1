//! Generated ESP-IDF-style app ELF files, for testing the ELF path of flashing: the
//! sections ESP-IDF's linker script makes and a flasher looks for (`.flash.appdesc` with
//! `esp_app_desc_t` first in flash-mapped data, flash code, RAM code), nothing else.

use super::{app_desc, filler, pad4, Chip, ImageSpec};

const HEADER_LEN: usize = 52;
const SECTION_HEADER_LEN: usize = 40;
const EM_XTENSA: u16 = 94;
const EM_RISCV: u16 = 243;
const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;
const SHF_ALLOC: u32 = 0x2;
const SHF_EXECINSTR: u32 = 0x4;

/// Where a chip maps flash data and code, and where its RAM code runs.
struct Layout {
    machine: u16,
    drom: u32,
    irom: u32,
    iram: u32,
}

fn layout(chip: Chip) -> Option<Layout> {
    match chip {
        Chip::Esp8266 => None,
        Chip::Esp32 => Some(Layout {
            machine: EM_XTENSA,
            drom: 0x3F40_0020,
            irom: 0x400D_0020,
            iram: 0x4008_0000,
        }),
        Chip::Esp32c3 => Some(Layout {
            machine: EM_RISCV,
            drom: 0x3C00_0020,
            irom: 0x4200_0020,
            iram: 0x4038_0000,
        }),
    }
}

/// A little-endian ELF32 for an ESP32-family chip; `None` for the ESP8266, whose
/// toolchain output is converted to a .bin before flashing. Same spec, same bytes.
pub fn generate(spec: &ImageSpec<'_>) -> Option<Vec<u8>> {
    let layout = layout(spec.chip)?;
    let code = filler(spec.code_len);
    let (flash_code, ram_code) = code.split_at(code.len() / 2);
    let names = [".flash.appdesc", ".flash.text", ".iram0.text", ".shstrtab"];
    let mut name_table = vec![0u8];
    let mut name_at = Vec::new();
    for name in names {
        name_at.push(name_table.len() as u32);
        name_table.extend_from_slice(name.as_bytes());
        name_table.push(0);
    }
    // Type, flags, address and contents of each section, in the order of `names`.
    let code_flags = SHF_ALLOC | SHF_EXECINSTR;
    let sections = [
        (
            SHT_PROGBITS,
            SHF_ALLOC,
            layout.drom,
            app_desc(spec.project, spec.version),
        ),
        (
            SHT_PROGBITS,
            code_flags,
            layout.irom,
            pad4(flash_code.to_vec()),
        ),
        (
            SHT_PROGBITS,
            code_flags,
            layout.iram,
            pad4(ram_code.to_vec()),
        ),
        (SHT_STRTAB, 0, 0, name_table),
    ];

    let mut body = Vec::new();
    let mut placed = Vec::new();
    for (_, _, _, data) in &sections {
        placed.push((HEADER_LEN + body.len(), data.len()));
        body.extend_from_slice(data);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let section_table = HEADER_LEN + body.len();

    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[1, 1, 1, 0]); // 32-bit, little-endian, version 1, System V
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&2u16.to_le_bytes()); // executable
    out.extend_from_slice(&layout.machine.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&layout.iram.to_le_bytes()); // entry
    out.extend_from_slice(&0u32.to_le_bytes()); // no program headers
    out.extend_from_slice(&(section_table as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    out.extend_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(SECTION_HEADER_LEN as u16).to_le_bytes());
    out.extend_from_slice(&(sections.len() as u16 + 1).to_le_bytes());
    out.extend_from_slice(&(sections.len() as u16).to_le_bytes()); // .shstrtab is last
    out.extend_from_slice(&body);
    out.extend_from_slice(&[0; SECTION_HEADER_LEN]); // the null section
    for (((kind, flags, addr, _), name), (offset, len)) in
        sections.iter().zip(&name_at).zip(&placed)
    {
        for word in [
            *name,
            *kind,
            *flags,
            *addr,
            *offset as u32,
            *len as u32,
            0,
            0,
            4,
            0,
        ] {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(chip: Chip) -> ImageSpec<'static> {
        ImageSpec {
            chip,
            project: "light-controller",
            version: "1.5.0",
            code_len: 1000,
        }
    }

    #[test]
    fn generated_elfs_are_reproducible_and_esp8266_has_none() {
        assert_eq!(
            generate(&spec(Chip::Esp32c3)),
            generate(&spec(Chip::Esp32c3))
        );
        assert!(generate(&spec(Chip::Esp8266)).is_none());
    }

    #[test]
    fn the_app_descriptor_section_holds_the_version() {
        let elf = generate(&spec(Chip::Esp32c3)).unwrap();
        let desc_at = HEADER_LEN;
        assert_eq!(
            &elf[desc_at..desc_at + 4],
            &super::super::APP_DESC_MAGIC.to_le_bytes()
        );
        assert_eq!(&elf[desc_at + 16..desc_at + 21], b"1.5.0");
        assert_eq!(u16::from_le_bytes([elf[0x12], elf[0x13]]), EM_RISCV);
    }
}
