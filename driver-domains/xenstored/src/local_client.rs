//! [`LocalClient`]: the store's client interface served in-process, for Dom0's own requests
//! (the toolstack writes device entries through it) and for tests that play every domain.

use alloc::vec::Vec;

use xenstore::{ClientError, DOM0, DomId, Request, StoreClient};

use crate::server::StoreServer;

/// [`StoreClient`] calling a [`StoreServer`] in the same address space as domain `domid`.
pub struct LocalClient<'s> {
    server: &'s mut StoreServer,
    domid: DomId,
}

impl<'s> LocalClient<'s> {
    /// Act as `domid` (which must be introduced, or Dom0).
    pub fn new(server: &'s mut StoreServer, domid: DomId) -> Self {
        Self { server, domid }
    }

    /// Act as Dom0.
    pub fn dom0(server: &'s mut StoreServer) -> Self {
        Self::new(server, DOM0)
    }
}

impl StoreClient for LocalClient<'_> {
    fn request(&mut self, request: Request<'_>, tx_id: u32) -> Result<Vec<u8>, ClientError> {
        match self.server.execute(self.domid, tx_id, request) {
            Ok(reply) => Ok(reply.payload().to_vec()),
            Err(error) => Err(ClientError::Store(error.errno())),
        }
    }
}
