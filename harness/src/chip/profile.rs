//! What tells the virtual chips apart: the loader's status length and command set, the
//! registers a host reads to identify the chip and its flash, and the ROM's boot words.

use super::protocol::{Op, StatusLen};
use crate::image::Chip;

/// The register a host reads first: its value names the chip family.
pub const CHIP_MAGIC_REG: u32 = 0x4000_1000;

/// JEDEC id of the virtual flash: a Winbond W25Q32 (manufacturer 0xEF, type 0x40,
/// capacity 0x16 = 4 MiB), the part most ESP modules carry.
pub const FLASH_JEDEC_ID: u32 = 0x0016_40EF;

/// The loader-relevant facts of one chip.
#[derive(Debug)]
pub struct Profile {
    pub chip: Chip,
    pub status_len: StatusLen,
    /// `chip_id` in the GET_SECURITY_INFO reply.
    pub security_chip_id: Option<u32>,
    /// Commands of the protocol this ROM does not implement.
    pub lacks: &'static [Op],
    pub spi: SpiRegisters,
    /// Register values after reset: chip magic, MAC and revision eFuses, UART divider.
    pub registers: &'static [(u32, u32)],
    /// The lines the ROM prints right after reset.
    pub banner: fn(Reset, BootMode) -> Vec<String>,
    /// The flash sector where the firmware keeps its settings (see `settings`).
    pub settings_sector: usize,
}

/// The SPI flash controller, as far as a host drives it through WRITE_REG / READ_REG to
/// run a flash command (read JEDEC id, status).
#[derive(Debug)]
pub struct SpiRegisters {
    /// SPI_CMD, at the base: writing the USR bit starts the user command.
    pub cmd: u32,
    /// SPI_USR2: the command byte in its low bits.
    pub usr2: u32,
    /// SPI_W0: the data the command read back.
    pub w0: u32,
}

/// SPI_CMD's "run the user command" bit; the hardware clears it when done.
pub const SPI_CMD_USR: u32 = 1 << 18;

const ESP8266: Profile = Profile {
    chip: Chip::Esp8266,
    status_len: StatusLen::Two,
    security_chip_id: None,
    lacks: &[
        Op::GetSecurityInfo,
        Op::SpiAttach,
        Op::SpiSetParams,
        Op::ChangeBaudrate,
        Op::ReadFlashSlow,
    ],
    spi: SpiRegisters {
        cmd: 0x6000_0200,
        usr2: 0x6000_0224,
        w0: 0x6000_0240,
    },
    registers: &[
        (CHIP_MAGIC_REG, 0xFFF0_C101),
        // OTP words: MAC 18:fe:34:12:34:56 (Espressif OUI implied by word 3 being 0).
        (0x3FF0_0050, 0x5600_0000),
        (0x3FF0_0054, 0x0000_1234),
        (0x3FF0_0058, 0),
        (0x3FF0_005C, 0),
        // UART divider of 115200 baud from the 52 MHz the ROM runs at (26 MHz crystal).
        (0x6000_0014, 451),
    ],
    banner: esp8266_banner,
    // The Arduino core's EEPROM sector on a 4 MB flash (`_EEPROM_start` 0x405FB000).
    settings_sector: 0x3F_B000,
};

const ESP32C3: Profile = Profile {
    chip: Chip::Esp32c3,
    status_len: StatusLen::Four,
    security_chip_id: Some(5),
    lacks: &[],
    spi: SpiRegisters {
        cmd: 0x6000_2000,
        usr2: 0x6000_2020,
        w0: 0x6000_2058,
    },
    registers: &[
        // ECO3 silicon (revision v0.3).
        (CHIP_MAGIC_REG, 0x1B31_506F),
        // eFuse block 1: MAC 34:85:18:12:34:56, then the word with minor revision 3.
        (0x6000_8844, 0x1812_3456),
        (0x6000_8848, 0x0000_3485),
        (0x6000_8850, 3 << 18),
        (0x6000_8858, 0),
    ],
    banner: esp32c3_banner,
    // The nvs partition of the default partition table, where the Arduino core's EEPROM
    // lives; between the partition table (0x8000) and the app (0x10000).
    settings_sector: 0x9000,
};

/// The profile of `chip`, if hil can be one.
pub fn profile(chip: Chip) -> Option<&'static Profile> {
    match chip {
        Chip::Esp8266 => Some(&ESP8266),
        Chip::Esp32c3 => Some(&ESP32C3),
        Chip::Esp32 => None,
    }
}

/// What brought the chip out of reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    PowerOn,
    /// The EN pin (reset button, or a host's DTR/RTS pulse).
    Pin,
    /// The loader's FLASH_END asked for a reboot.
    Software,
}

/// Where the ROM goes after reset (the strapping pins decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    Flash,
    Download,
}

/// The ESP8266 ROM's reset line (it prints at 74880 baud, so a 115200-baud host sees it
/// garbled; the virtual chip prints it legibly).
fn esp8266_banner(reset: Reset, mode: BootMode) -> Vec<String> {
    let cause = match reset {
        Reset::PowerOn => 1,
        Reset::Pin => 2,
        Reset::Software => 3,
    };
    let boot_mode = match mode {
        BootMode::Flash => "(3,6)",
        BootMode::Download => "(1,7)",
    };
    vec![
        String::new(),
        format!(" ets Jan  8 2013,rst cause:{cause}, boot mode:{boot_mode}"),
        String::new(),
    ]
}

fn esp32c3_banner(reset: Reset, mode: BootMode) -> Vec<String> {
    let rst = match reset {
        Reset::PowerOn | Reset::Pin => "0x1 (POWERON)",
        Reset::Software => "0x3 (RTC_SW_SYS_RST)",
    };
    let (boot, next) = match mode {
        BootMode::Flash => ("0xc (SPI_FAST_FLASH_BOOT)", "SPIWP:0xee"),
        BootMode::Download => ("0x7 (DOWNLOAD(USB/UART0/1))", "waiting for download"),
    };
    vec![
        "ESP-ROM:esp32c3-api1-20210207".to_string(),
        "Build:Feb  7 2021".to_string(),
        format!("rst:{rst},boot:{boot}"),
        next.to_string(),
    ]
}
