//! hv-core's ELF loader (`hv_core::elf::parse`, then `Image::page_ranges`) on any file, with the
//! window hv-core gives a domain image: whatever the bytes, no panic, and an accepted image
//! keeps every promise the domain builder relies on before it copies and maps anything: file
//! ranges inside the file, segments inside the window, no W+X, no overlap, entry executable,
//! and page ranges that are sorted, disjoint, page-aligned, inside the window's pages and carry
//! exactly the permissions of every segment in them.
#![no_main]

use hv_abi::layout::{DOMAIN_BASE, IMAGE_OFFSET};
use hv_core::elf::{ElfError, parse};
use libfuzzer_sys::fuzz_target;

/// A domain of 16 MiB less its 256 KiB stack: where hv-core lets an image lie.
const WINDOW: (u64, u64) = (DOMAIN_BASE + IMAGE_OFFSET, DOMAIN_BASE + (16 << 20) - (256 << 10));

fuzz_target!(|file: &[u8]| {
    let (start, end) = WINDOW;
    let image = match parse(file, start, end) {
        Ok(image) => image,
        Err(e) => {
            let _ = e.to_string();
            if let ElfError::SegmentOutsideWindow { vaddr } = e {
                let _ = vaddr;
            }
            return;
        }
    };
    assert!(!image.segments.is_empty() && image.segments.len() <= 16);
    for s in &image.segments {
        assert!(s.mem_size > 0 && s.file_size <= s.mem_size);
        let from = usize::try_from(s.file_offset).unwrap();
        let to = from.checked_add(usize::try_from(s.file_size).unwrap()).unwrap();
        assert!(file.get(from..to).is_some(), "segment bytes outside the file");
        assert!(s.vaddr >= start && s.vaddr.checked_add(s.mem_size).is_some_and(|e| e <= end));
        assert!(!(s.writable && s.executable));
    }
    let mut sorted = image.segments.clone();
    sorted.sort_by_key(|s| s.vaddr);
    for w in sorted.windows(2) {
        assert!(w[0].vaddr + w[0].mem_size <= w[1].vaddr, "segments overlap");
    }
    assert!(
        image.segments.iter().any(|s| s.executable && (s.vaddr..s.vaddr + s.mem_size).contains(&image.entry)),
        "entry outside every executable segment"
    );

    let pages = image.page_ranges();
    for w in pages.windows(2) {
        assert!(w[0].end <= w[1].start, "page ranges overlap or are unsorted");
    }
    for p in &pages {
        assert!(p.start % 4096 == 0 && p.end % 4096 == 0 && p.start < p.end);
        assert!(p.start >= start & !0xfff && p.end <= (end + 0xfff) & !0xfff, "pages outside the window");
        assert!(!(p.writable && p.executable));
    }
    for s in &image.segments {
        let (first, last) = (s.vaddr & !0xfff, (s.vaddr + s.mem_size - 1) & !0xfff);
        let covering: Vec<_> = pages.iter().filter(|p| p.start < s.vaddr + s.mem_size && s.vaddr < p.end).collect();
        assert_eq!(covering.len(), 1, "a segment spans several page ranges");
        let p = covering[0];
        assert!(p.start <= first && last < p.end);
        assert_eq!(
            (p.writable, p.executable),
            (s.writable, s.executable),
            "a page mapped with another segment's rights"
        );
    }
});
