//! What a ring carries: [`RingEntry`] (a fixed-size wire value) and [`RingProtocol`] (which
//! request type goes with which response type).

/// The byte image of one entry (`[u8; N]`).
pub trait EntryBytes: AsRef<[u8]> + AsMut<[u8]> + Copy {
    /// All zeroes: the starting point for every encoded entry, so padding never leaks (XSA-216).
    const ZEROED: Self;
}

impl<const N: usize> EntryBytes for [u8; N] {
    const ZEROED: Self = [0; N];
}

/// A value stored in a ring slot.
///
/// `from_bytes` is infallible: it only reinterprets a private copy of the slot as integers.
/// Judging whether the peer's value makes sense is the job of the wire type's `validate`.
pub trait RingEntry: Sized {
    /// `[u8; SIZE]` with the C `sizeof`.
    type Bytes: EntryBytes;
    /// Decode the fields from a private copy of the slot.
    fn from_bytes(bytes: &Self::Bytes) -> Self;
    /// Encode into a zeroed image (padding stays zero).
    fn to_bytes(&self) -> Self::Bytes;
    /// The id that ties a response to its request, if this entry carries one. The front end
    /// requires ids below the ring size, one outstanding request per id, and rejects a response
    /// whose id has no outstanding request. `None` for slots that carry no id (netif extra-info
    /// slots and their `NETIF_RSP_NULL` responses).
    #[inline]
    fn tracking_id(&self) -> Option<u64> {
        None
    }
    /// How many leading bytes of [`to_bytes`](Self::to_bytes) carry meaning and must be written
    /// to the slot (the rest of the slot keeps bytes the peer already saw). Default: all.
    #[inline]
    fn encoded_len(&self) -> usize {
        size_of::<Self::Bytes>()
    }
}

/// Byte size of an entry type.
#[inline]
pub const fn entry_size<E: RingEntry>() -> usize {
    size_of::<E::Bytes>()
}

/// One kind of ring: its request and response types.
pub trait RingProtocol {
    /// What the front end produces.
    type Request: RingEntry;
    /// What the back end produces.
    type Response: RingEntry;
    /// Bytes per slot: the C union of request and response.
    const SLOT_SIZE: usize = {
        let req = entry_size::<Self::Request>();
        let rsp = entry_size::<Self::Response>();
        if req > rsp { req } else { rsp }
    };
}
