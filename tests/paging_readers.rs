//! The page-trace readers of `kvsim paging` (text, CSV, libCacheSim's csv and
//! oracleGeneral) on hand-made files, the cost/OPT columns, and parallel runs against one
//! thread.

mod common;
use common::*;
use kvsim::paging::readers::{
    read_csv, read_oracle_general, read_pages, read_text, LcsCsvParams, PageFormat,
};
use kvsim::paging::{Trace, NEVER};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn err(r: kvsim::Result<Trace>) -> String {
    r.map(|t| t.pages).unwrap_err().to_string()
}

/// oracleGeneral records: (clock time, object id, object size, next access vtime).
fn oracle_general(records: &[(u32, u64, u32, i64)]) -> Vec<u8> {
    let mut b = Vec::new();
    for &(t, id, size, next) in records {
        b.extend_from_slice(&t.to_le_bytes());
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&size.to_le_bytes());
        b.extend_from_slice(&next.to_le_bytes());
    }
    b
}

#[test]
fn text_labels_get_dense_ids_in_order_of_first_appearance() {
    let dir = temp_dir("pr-text");
    let p = write(
        &dir,
        "t.txt",
        "5\n\nb\n007\n7\r\n 5 \n\u{a0}b\u{3000}\n18446744073709551615\n\t\n7".as_bytes(),
    );
    let t = read_text(&p).unwrap();
    // 5, b, 007 and 7 are four pages (labels are text: 007 is not 7); trimmed as str::trim.
    assert_eq!(t.pages, vec![0, 1, 2, 3, 0, 1, 4, 3]);
    assert_eq!(t.num_pages, 5);
    assert_eq!(t.next_use, vec![4, 5, NEVER, 7, NEVER, NEVER, NEVER, NEVER]);
    assert_eq!(t.name, p.display().to_string());
}

#[test]
fn text_reads_lines_across_chunks_and_longer_than_the_buffer() {
    let dir = temp_dir("pr-chunks");
    // About 30 MiB of lines of varying width (many 1 MiB chunk boundaries fall inside
    // lines), with a few lines of 3 MiB.
    let labels: Vec<u64> = (0..1_500_000u64)
        .map(|i| (i * 7919) % 100_003 * 1013 + (i % 7 == 0) as u64 * (1 << 40))
        .collect();
    let mut text = String::new();
    for (i, l) in labels.iter().enumerate() {
        if i % 300_000 == 0 {
            text.push_str(&"x".repeat(3 << 20)); // one 3 MiB label
            text.push('\n');
        }
        text.push_str(&format!("{l}\n"));
    }
    let p = write(&dir, "long.txt", text.as_bytes());
    let t = read_text(&p).unwrap();
    let mut want = vec![0u64]; // the long label, then the numbers in order
    for (i, &l) in labels.iter().enumerate() {
        if i > 0 && i % 300_000 == 0 {
            want.push(0);
        }
        want.push(l + 1);
    }
    let expected = Trace::from_labels("x", want);
    assert_eq!(t.pages, expected.pages);
    assert_eq!(t.num_pages, expected.num_pages);
}

#[test]
fn text_errors_name_the_file_and_line() {
    let dir = temp_dir("pr-text-err");
    let p = write(&dir, "bad.txt", b"1\n\n2\n\xff\n3\n");
    assert_eq!(
        err(read_text(&p)),
        format!(
            "{}:4: cannot read: stream did not contain valid UTF-8",
            p.display()
        )
    );
    let missing = dir.join("missing.txt");
    assert!(err(read_text(&missing)).starts_with(&format!("cannot open {}: ", missing.display())));
    assert_eq!(
        err(read_text(&dir)),
        format!(
            "{}:1: cannot read: Is a directory (os error 21)",
            dir.display()
        )
    );
}

#[test]
fn csv_reads_a_header_unit_sizes_and_quoted_ids() {
    let dir = temp_dir("pr-csv");
    let p = write(
        &dir,
        "ok.csv",
        b"time,obj_id,size\n1,a,1\n2,b\n3.5, a , 1 \n4,007,1\n5,7,1\n6,\"x,y\",1\n",
    );
    let t = read_csv(&p, false).unwrap();
    assert_eq!(t.pages, vec![0, 1, 0, 2, 3, 4]);
    // With --ignore-obj-size: size 0 skipped, any other size one page.
    let p = write(&dir, "sizes.csv", b"1,a,0\n2,b,4096\n3,a,1\n4,b, 2 \n");
    assert_eq!(read_csv(&p, true).unwrap().pages, vec![0, 1, 0]);
}

#[test]
fn csv_errors_keep_their_messages() {
    let dir = temp_dir("pr-csv-err");
    for (body, ignore, msg) in [
        (
            &b"1,a\n2,b,1,4\n"[..],
            false,
            "2: expected time,obj_id[,size], found 4 columns",
        ),
        (
            b"x\n",
            false,
            "1: expected time,obj_id[,size], found 1 columns",
        ),
        (
            b"time,id\n1,a\nnan,b\n",
            false,
            "3: time `nan` is not a finite number",
        ),
        (
            b"1,a\ninf,b\n",
            false,
            "2: time `inf` is not a finite number",
        ),
        (
            b"1,a\n2,b,2\n",
            false,
            "2: size 2 is not 1; only unit-size pages are supported",
        ),
        (
            b"1,a\n2,b, 0\n",
            false,
            "2: size  0 is not 1; only unit-size pages are supported",
        ),
        (
            b"1,a\n2,b,x\n",
            true,
            "2: object size `x` is not a non-negative integer",
        ),
        (
            b"1,a\n2,b,-1\n",
            true,
            "2: object size `-1` is not a non-negative integer",
        ),
    ] {
        let p = write(&dir, "e.csv", body);
        assert_eq!(
            err(read_csv(&p, ignore)),
            format!("{}:{msg}", p.display()),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let p = write(&dir, "u.csv", b"1,a\n2,\xff\n");
    assert!(
        err(read_csv(&p, false)).starts_with(&format!("{}:2: malformed CSV row: ", p.display()))
    );
}

#[test]
fn oracle_general_records_as_libcachesim_lays_them_out() {
    let dir = temp_dir("pr-oracle");
    let records = [
        (0, u64::MAX, 1, 2),
        (1, 1 << 40, 1, -1),
        (2, u64::MAX, 1, 3),
        (3, u64::MAX, 1, -1),
        (4, 3, 1, -1),
    ];
    let p = write(&dir, "t.oracleGeneral", &oracle_general(&records));
    let t = read_oracle_general(&p, false).unwrap();
    assert_eq!(t.pages, vec![0, 1, 0, 0, 2]);
    assert_eq!(t.next_use, vec![2, NEVER, 3, NEVER, NEVER]);
    // The record is 24 bytes: the id at offset 4 and the size at 12, not padded to 8.
    let mut bytes = oracle_general(&records);
    bytes.extend_from_slice(&[1, 2, 3, 4, 5]);
    let p = write(&dir, "cut.oracleGeneral", &bytes);
    assert_eq!(
        err(read_oracle_general(&p, false)),
        format!(
            "{}: record 6: truncated: 5 of 24 bytes (the file is not a whole number of \
             oracleGeneral records)",
            p.display()
        )
    );
    let sized = oracle_general(&[
        (0, 7, 1, -1),
        (1, 8, 4096, -1),
        (2, 9, 0, -1),
        (3, 7, 1, -1),
    ]);
    let p = write(&dir, "sized.oracleGeneral", &sized);
    assert_eq!(
        err(read_oracle_general(&p, false)),
        format!(
            "{}: record 2: object size 4096 is not 1; only unit-size pages are supported \
             (--ignore-obj-size counts every object as one page, as libCacheSim's option does)",
            p.display()
        )
    );
    assert_eq!(read_oracle_general(&p, true).unwrap().pages, vec![0, 1, 0]);
    let p = write(&dir, "empty.oracleGeneral", b"");
    assert!(read_oracle_general(&p, false).unwrap().is_empty());
}

fn lcs(dir: &Path, body: &[u8], params: Option<&str>) -> kvsim::Result<Trace> {
    let p = write(dir, "l.csv", body);
    let params = params.map_or_else(|| Ok(LcsCsvParams::default()), LcsCsvParams::parse)?;
    read_pages(&p, &PageFormat::LibCacheSimCsv(params), false)
}

#[test]
fn libcachesim_csv_columns_delimiters_and_headers() {
    let dir = temp_dir("pr-lcs");
    let pages = |body: &[u8], params| lcs(&dir, body, params).unwrap().pages;
    // time,obj_id,obj_size with a detected header, or none.
    assert_eq!(
        pages(b"timestamp,obj_id,obj_size\n1,a,1\n2,b,1\n3,a,1\n", None),
        [0, 1, 0]
    );
    assert_eq!(pages(b"1,10,1\n2,20,1\n3,10,1\n", None), [0, 1, 0]);
    // Columns and delimiter given (libCacheSim's README form), a detected tab, `|`.
    let p = "time-col=2, obj-id-col=1, delimiter=\\t, has-header=false";
    assert_eq!(pages(b"a\t1\nb\t2\na\t3\n", Some(p)), [0, 1, 0]);
    assert_eq!(
        pages(b"10\ta\n20\tb\n30\tb\n", Some("obj-id-col=2")),
        [0, 1, 1]
    );
    // A first line with as many letters as digits is a header, as libCacheSim decides.
    assert_eq!(pages(b"1\ta\n2\tb\n3\tb\n", Some("obj-id-col=2")), [0, 0]);
    assert_eq!(
        pages(b"x|1\ny|2\nx|3\n", Some("obj-id-col=1,header=0")),
        [0, 1, 0]
    );
    // Numeric ids as strtoull reads them: 10, 0xa and 012 are one object.
    assert_eq!(
        pages(
            b"10\n0xa\n012\n11\n",
            Some("obj-id-col=1,obj-id-is-num=true")
        ),
        [0, 0, 0, 1]
    );
    // Text ids otherwise.
    assert_eq!(
        pages(b"10\n0xa\n012\n10\n", Some("obj-id-col=1")),
        [0, 1, 2, 0]
    );
}

#[test]
fn libcachesim_csv_errors_name_the_file_and_record() {
    let dir = temp_dir("pr-lcs-err");
    let p = dir.join("l.csv");
    for (body, params, msg) in [
        (&b"1,a,1\n2\n"[..], None, "2: 1 columns, obj-size-col is 3"),
        (b"1,a,1\n2,b,2\n", None, "2: object size 2 is not 1; only unit-size pages are supported (--ignore-obj-size counts every object as one page, as libCacheSim's option does)"),
        (b"1,a,1\nx,b,1\n", None, "2: time `x` is not a finite number"),
        (b"1,x\n", Some("obj-id-col=2,obj-id-is-num=1,has-header=false"), "1: object id `x` is not a number (obj-id-is-num=true)"),
    ] {
        assert_eq!(
            err(lcs(&dir, body, params)),
            format!("{}:{msg}", p.display()),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn paging_reads_the_new_formats_and_refuses_misplaced_options() {
    let dir = temp_dir("pr-cli");
    let ids = [5u64, 1 << 40, 5, 9, 1 << 40, 5, 9, 9, 3, 5];
    let text: String = ids.iter().map(|i| format!("{i}\n")).collect();
    let txt = write(&dir, "t.txt", text.as_bytes());
    let records: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (i as u32, id, 1, -1))
        .collect();
    let bin = write(&dir, "t.oracleGeneral", &oracle_general(&records));
    let csv_body: String = ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("{i},{id},1\n"))
        .collect();
    let csv = write(&dir, "t.csv", csv_body.as_bytes());
    let args = ["-k", "2,3", "--policies", "lru,arc,belady"];
    let table = |file: &Path, format: &[&str]| {
        let mut a = vec!["paging", file.to_str().unwrap()];
        a.extend_from_slice(format);
        a.extend_from_slice(&args);
        run_ok(&a)
    };
    let want = table(&txt, &[]);
    assert!(want.contains("belady"), "{want}");
    assert_eq!(table(&bin, &["--format", "oracle-general"]), want);
    assert_eq!(table(&bin, &["--format", "oracleGeneral"]), want);
    assert_eq!(table(&csv, &["--format", "libcachesim-csv"]), want);
    assert_eq!(table(&csv, &["--format", "csv"]), want);
    let p = "time-col=1,obj-id-col=2,obj-size-col=3,delimiter=,,has-header=false";
    assert_eq!(
        table(
            &csv,
            &["--format", "libcachesim-csv", "--trace-type-params", p]
        ),
        want
    );
    let t = txt.to_str().unwrap();
    for (extra, msg) in [
        (
            vec![t, "--trace-type-params", "obj-id-col=1"],
            "--trace-type-params applies to --format libcachesim-csv only",
        ),
        (
            vec![t, "--ignore-obj-size"],
            "--ignore-obj-size applies to formats with object sizes",
        ),
        (
            vec![
                t,
                "--format",
                "libcachesim-csv",
                "--trace-type-params",
                "obj-id-col=1,x=2",
            ],
            "--trace-type-params: unknown parameter `x`",
        ),
        (vec![t, "--jobs", "0"], "--jobs: must be at least 1"),
    ] {
        let mut a = vec!["paging", "-k", "2"];
        a.extend(extra);
        let o = run(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(msg), "{a:?}: {stderr}");
    }
    let cut = write(&dir, "cut.oracleGeneral", &oracle_general(&records)[..100]);
    let o = run(&[
        "paging",
        cut.to_str().unwrap(),
        "--format",
        "oracle-general",
        "-k",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: record 5: truncated: 4 of 24 bytes",
            cut.display()
        )),
        "{stderr}"
    );
}

#[test]
fn cost_over_opt_comes_from_belady_or_opt_and_is_blank_otherwise() {
    let dir = temp_dir("pr-opt");
    // k = 2 over 1 2 3 repeated: LRU misses all 9, Belady 6.
    let f = write(&dir, "t.txt", b"1\n2\n3\n1\n2\n3\n1\n2\n3\n");
    let f = f.to_str().unwrap();
    let head = "policy               predictor                  k       misses     miss%  cost/OPT      std\n";
    let lru = "lru                  -                          2          9.0  100.0000    1.5000   0.0000\n";
    let belady = "belady               -                          2          6.0   66.6667    1.0000   0.0000\n";
    let both = run_ok(&["paging", f, "-k", "2", "--policies", "lru,belady"]);
    assert_eq!(both, format!("{head}{lru}{belady}"));
    let opt = run_ok(&["paging", f, "-k", "2", "--policies", "lru", "--opt"]);
    assert_eq!(opt, format!("{head}{lru}"));
    let csv = dir.join("rows.csv");
    let none = run_ok(&[
        "paging",
        f,
        "-k",
        "2",
        "--policies",
        "lru",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let blank = "lru                  -                          2          9.0  100.0000         -        -\n";
    assert_eq!(none, format!("{head}{blank}"));
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        "policy,predictor,k,requests,misses,miss_ratio,opt_misses,cost_ratio,cost_ratio_std,runs\n\
         lru,-,2,9,9.0,1.0,,,,1\n"
    );
}

#[test]
fn parallel_runs_print_exactly_what_one_thread_prints() {
    let dir = temp_dir("pr-parallel");
    let mut files = Vec::new();
    for i in 0..3u64 {
        let body: String = (0..3000u64)
            .map(|t| format!("{}\n", (t * (7 + i) + t / 5 + i) % (40 + 13 * i)))
            .collect();
        files.push(write(&dir, &format!("t{i}.txt"), body.as_bytes()));
    }
    let outputs = |jobs: Option<&str>, threads_env: Option<&str>| {
        let csv = dir.join(format!("rows-{jobs:?}-{threads_env:?}.csv"));
        let mut c = kvsim();
        c.arg("paging");
        c.args(&files);
        c.args([
            "-k",
            "3,7",
            "--policies",
            "lru,marker,ftp,lmarker,robust-ftp,discard-lru,mark0,lfu",
            "--predictor",
            "oracle,discard",
            "--sigma",
            "0,5",
            "--flip",
            "0.2",
            "--runs",
            "3",
            "--opt",
            "--csv",
            csv.to_str().unwrap(),
        ]);
        if let Some(j) = jobs {
            c.args(["--jobs", j]);
        }
        c.env_remove("RAYON_NUM_THREADS");
        if let Some(n) = threads_env {
            c.env("RAYON_NUM_THREADS", n);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (o.stdout, std::fs::read(&csv).unwrap())
    };
    let one = outputs(Some("1"), None);
    assert!(String::from_utf8_lossy(&one.0).contains("robust-ftp"));
    assert_eq!(outputs(Some("4"), None), one);
    assert_eq!(outputs(None, Some("3")), one);
}
