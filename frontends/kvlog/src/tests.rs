use super::*;

/// A disk in memory that counts flushes and can be told to tear a write.
struct MemDisk {
    data: Vec<u8>,
    flushes: u64,
    /// Persist only this many bytes of the next write (a torn write).
    tear_next: Option<usize>,
}

impl MemDisk {
    fn new(sectors: usize) -> Self {
        Self { data: vec![0; sectors * SECTOR], flushes: 0, tear_next: None }
    }
}

impl Disk for MemDisk {
    type Error = &'static str;
    fn sectors(&self) -> u64 {
        (self.data.len() / SECTOR) as u64
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), &'static str> {
        let o = sector as usize * SECTOR;
        buf.copy_from_slice(self.data.get(o..o + buf.len()).ok_or("out of range")?);
        Ok(())
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), &'static str> {
        let o = sector as usize * SECTOR;
        let n = self.tear_next.take().unwrap_or(buf.len()).min(buf.len());
        self.data.get_mut(o..o + buf.len()).ok_or("out of range")?[..n].copy_from_slice(&buf[..n]);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), &'static str> {
        self.flushes += 1;
        Ok(())
    }
}

fn value(i: u32) -> Vec<u8> {
    (0..(i * 37 % 900) as usize).map(|j| (i as usize * 31 + j) as u8).collect()
}

#[test]
fn blank_disk_is_formatted_and_records_survive_reopening() {
    let mut log = Kvlog::open(MemDisk::new(2048)).unwrap();
    assert_eq!(log.recovery, Recovery { formatted: true, records: 0, tail: 1 });
    for i in 0..50u32 {
        let flushes = log.disk.flushes;
        assert_eq!(log.put(format!("key{}", i % 40).as_bytes(), &value(i)).unwrap(), u64::from(i) + 1);
        assert_eq!(log.disk.flushes, flushes + 1, "each put flushes before it returns");
    }
    let tail = log.tail();
    let mut log = Kvlog::open(log.into_disk()).unwrap();
    assert_eq!(log.recovery, Recovery { formatted: false, records: 50, tail });
    assert_eq!(log.len(), 40);
    for k in 0..40u32 {
        let newest = if k < 10 { k + 40 } else { k };
        assert_eq!(log.get(format!("key{k}").as_bytes()).unwrap(), Some(value(newest)));
    }
    assert_eq!(log.get(b"nope").unwrap(), None);
    assert_eq!(log.put(b"after", b"reopen").unwrap(), 51);
}

#[test]
fn a_torn_tail_is_dropped_and_overwritten() {
    let mut log = Kvlog::open(MemDisk::new(256)).unwrap();
    for i in 0..5u32 {
        log.put(format!("k{i}").as_bytes(), &value(i + 20)).unwrap();
    }
    let tail = log.tail();
    // The 6th record (3 sectors) reaches the disk only partly.
    log.disk.tear_next = Some(SECTOR + 100);
    log.put(b"torn", &[0x5a; 1200]).unwrap();
    let mut log = Kvlog::open(log.into_disk()).unwrap();
    assert_eq!((log.recovery.records, log.recovery.tail), (5, tail));
    assert_eq!(log.get(b"torn").unwrap(), None);
    assert_eq!(log.put(b"next", b"v").unwrap(), 6, "the next append takes the torn record's place");
    let mut log = Kvlog::open(log.into_disk()).unwrap();
    assert_eq!(log.recovery.records, 6);
    assert_eq!(log.get(b"next").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn corruption_anywhere_in_a_record_ends_the_log_there() {
    let mut log = Kvlog::open(MemDisk::new(256)).unwrap();
    let mut starts = Vec::new();
    for i in 0..6u32 {
        starts.push(log.tail());
        log.put(format!("k{i}").as_bytes(), &value(i + 30)).unwrap();
    }
    let disk = log.into_disk();
    // Flip one byte in record 3's header, key, value; or its sequence number.
    for (what, at) in [("magic", 0), ("key length", 4), ("seq", 16), ("checksum", 24), ("key", 33), ("value", 40)] {
        let mut d = MemDisk { data: disk.data.clone(), flushes: 0, tear_next: None };
        d.data[starts[3] as usize * SECTOR + at] ^= 0x40;
        let log = Kvlog::open(d).unwrap();
        assert_eq!((log.recovery.records, log.recovery.tail), (3, starts[3]), "{what}");
    }
    // A stale record with the right shape but an old sequence number past the end mark.
    let mut d = MemDisk { data: disk.data.clone(), flushes: 0, tear_next: None };
    let stale = encode_record(7, b"stale", b"x");
    let end = Kvlog::open(MemDisk { data: disk.data.clone(), flushes: 0, tear_next: None }).unwrap().tail();
    d.data[(end as usize + 1) * SECTOR..(end as usize + 2) * SECTOR].copy_from_slice(&stale);
    assert_eq!(Kvlog::open(d).unwrap().recovery.records, 6);
}

#[test]
fn foreign_disks_headers_and_limits_are_refused() {
    let mut d = MemDisk::new(16);
    d.data[0] = 1;
    assert!(matches!(Kvlog::open(d), Err(Error::NotAKvlog)));
    let mut d = MemDisk::new(16);
    d.data[..SECTOR].copy_from_slice(&header_sector());
    d.data[9] ^= 1;
    assert!(matches!(Kvlog::open(d), Err(Error::BadHeader)));
    let mut log = Kvlog::open(MemDisk::new(8)).unwrap();
    assert!(matches!(log.put(b"", b"v"), Err(Error::TooLarge)));
    assert!(matches!(log.put(&[1; 256], b"v"), Err(Error::TooLarge)));
    assert!(matches!(log.put(b"k", &[1; MAX_VALUE + 1]), Err(Error::TooLarge)));
    // 8 sectors: header, then records of 2 sectors need 3 with the end mark.
    assert!(log.put(b"a", &[1; 600]).is_ok());
    assert!(log.put(b"b", &[1; 600]).is_ok());
    assert!(log.put(b"c", &[1; 600]).is_ok());
    assert!(matches!(log.put(b"d", &[1; 600]), Err(Error::Full)));
    assert_eq!(Kvlog::open(log.into_disk()).unwrap().recovery.records, 3);
}
