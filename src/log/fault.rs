//! What can be wrong with the bytes at one place of a segment: a frame, a
//! write unit's header or trailer, or the segment header. Recovery branches
//! on these (a torn write versus damage); messages are rendered from them.

/// Which piece of the on-disk format a fault is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    FrameHeader,
    Frame,
    UnitHeader,
    UnitTrailer,
    SegmentHeader,
}

impl Piece {
    fn name(self) -> &'static str {
        match self {
            Piece::FrameHeader => "frame header",
            Piece::Frame => "frame",
            Piece::UnitHeader => "unit header",
            Piece::UnitTrailer => "unit trailer",
            Piece::SegmentHeader => "segment header",
        }
    }
}

impl std::fmt::Display for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing wrong with the bytes read at an offset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("{piece} cut short: {got} of {needed} bytes")]
    CutShort {
        piece: Piece,
        got: usize,
        needed: usize,
    },
    #[error("{0} checksum does not match")]
    Checksum(Piece),
    #[error("record hash does not match its bytes")]
    HashMismatch,
    #[error("prev_hash does not link to the previous record")]
    Unlinked,
    #[error("frame claims a batch starting at seq {batch_first_seq} after its own")]
    BatchAfterSelf { batch_first_seq: u64 },
    #[error("unknown codec {0} in frame header")]
    UnknownCodec(u8),
    #[error("reserved frame header bytes are not zero")]
    ReservedNotZero,
    #[error("frame payload length {0} is out of range")]
    PayloadLength(usize),
    #[error("no unit header where a write unit begins")]
    NoUnitHeader,
    #[error("no unit trailer where the unit's frames end")]
    NoUnitTrailer,
    #[error("unit trailer length {0} is malformed")]
    TrailerLength(usize),
    #[error("unit trailer piece count disagrees with its length")]
    TrailerPieces,
    #[error("unit header names seq {named} where seq {next} is next")]
    UnitSeq { named: u64, next: u64 },
    #[error("unit header names an empty unit")]
    EmptyUnit,
    #[error("the write unit is cut short: zeros where its frames go on")]
    UnitEndsEarly,
    #[error("a frame runs past the end its unit header gives")]
    FramePastUnit,
    #[error("a unit trailer outside a unit")]
    TrailerOutsideUnit,
    #[error("unit trailer describes another unit (start {start}, seq {first_seq}, {records} records; the unit read starts at {read_start}, seq {read_first_seq}, {read_records} records)")]
    TrailerOfAnotherUnit {
        start: u64,
        first_seq: u64,
        records: u64,
        read_start: u64,
        read_first_seq: u64,
        read_records: u64,
    },
    #[error(
        "segment header is not that of a version 1 to {newest} segment starting at seq {first_seq}"
    )]
    SegmentHeader { newest: u32, first_seq: u64 },
    #[error("zeros where the next frame or unit begins, with data after them")]
    ZerosBeforeData,
}
