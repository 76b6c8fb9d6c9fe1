//! The virtual chip's flash on disk, so that what was flashed survives the process (and
//! can be inspected): a file of exactly the flash's size, erased bytes 0xFF. It holds
//! the firmware's stored settings, Wi-Fi password included, so a new file is the
//! owner's alone.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::rom::FLASH_SIZE;

/// The open flash file; a temporary one is deleted on drop.
pub struct FlashStore {
    file: File,
    path: PathBuf,
    _temporary: Option<tempfile::TempPath>,
}

impl FlashStore {
    /// Opens `path` (created erased when missing), or an erased temporary file. Returns
    /// the store and the flash contents.
    pub fn open(path: Option<&Path>) -> Result<(FlashStore, Vec<u8>), String> {
        let Some(path) = path else {
            let temporary = tempfile::Builder::new()
                .prefix("hil-flash-")
                .tempfile()
                .map_err(|e| format!("cannot create a temporary flash file: {e}"))?;
            let (file, temp_path) = temporary.into_parts();
            let store = FlashStore {
                file,
                path: temp_path.to_path_buf(),
                _temporary: Some(temp_path),
            };
            return store.erased();
        };
        let fail = |e: io::Error| format!("flash file {}: {e}", path.display());
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(fail)?;
        let store_of = |file| FlashStore {
            file,
            path: path.to_path_buf(),
            _temporary: None,
        };
        if !existed {
            return store_of(file).erased();
        }
        let mut flash = Vec::with_capacity(FLASH_SIZE);
        file.read_to_end(&mut flash).map_err(fail)?;
        if flash.len() != FLASH_SIZE {
            return Err(format!(
                "flash file {} is {} bytes, but the virtual chip's flash is 4 MiB ({FLASH_SIZE} bytes); \
                 remove the file to start with an erased flash",
                path.display(),
                flash.len()
            ));
        }
        Ok((store_of(file), flash))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes changed flash bytes through to the file.
    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), String> {
        self.file
            .write_all_at(bytes, offset as u64)
            .map_err(|e| format!("flash file {}: {e}", self.path.display()))
    }

    fn erased(self) -> Result<(FlashStore, Vec<u8>), String> {
        let flash = vec![0xFF; FLASH_SIZE];
        self.write(0, &flash)?;
        Ok((self, flash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_flash_file_is_erased_and_keeps_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash.bin");
        let (store, flash) = FlashStore::open(Some(&path)).unwrap();
        assert!(flash.iter().all(|&b| b == 0xFF));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        store.write(0x1_0000, &[0xE9, 1]).unwrap();
        drop(store);
        let (_, again) = FlashStore::open(Some(&path)).unwrap();
        assert_eq!(&again[0x1_0000..0x1_0003], &[0xE9, 1, 0xFF]);
    }

    #[test]
    fn a_file_of_the_wrong_size_is_refused_with_the_remedy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.bin");
        std::fs::write(&path, [0u8; 100]).unwrap();
        let error = FlashStore::open(Some(&path)).err().unwrap();
        assert!(error.contains("is 100 bytes"), "{error}");
        assert!(error.contains("remove the file"), "{error}");
    }

    #[test]
    fn without_a_path_the_flash_lives_in_a_temporary_file() {
        let (store, flash) = FlashStore::open(None).unwrap();
        assert_eq!(flash.len(), FLASH_SIZE);
        let path = store.path().to_path_buf();
        assert!(path.exists());
        drop(store);
        assert!(!path.exists());
    }
}
