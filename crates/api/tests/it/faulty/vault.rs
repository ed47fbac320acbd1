//! [`VaultPort`] through [`Faulty`].

use async_trait::async_trait;
use bytes::Bytes;
use healthledger_core::{
    ByteStream, Cid, HhNumber, ObjectStatus, SealedObject, StoredObject, VaultHealth, VaultPort,
    VaultResult,
};

use super::Faulty;

#[async_trait]
impl<P: VaultPort> VaultPort for Faulty<P> {
    async fn put(&self, patient: HhNumber, plaintext: Bytes) -> VaultResult<SealedObject> {
        let sealed = self.run("put", self.inner.put(patient, plaintext)).await?;
        self.sealed.lock().unwrap().push(sealed.cid);
        Ok(sealed)
    }

    async fn put_stream(
        &self,
        patient: HhNumber,
        plaintext: ByteStream,
    ) -> VaultResult<SealedObject> {
        let sealed = self
            .run("put_stream", self.inner.put_stream(patient, plaintext))
            .await?;
        self.sealed.lock().unwrap().push(sealed.cid);
        Ok(sealed)
    }

    async fn get(&self, patient: HhNumber, cid: &Cid) -> VaultResult<Bytes> {
        self.run("get", self.inner.get(patient, cid)).await
    }

    async fn get_stream(&self, patient: HhNumber, cid: &Cid) -> VaultResult<ByteStream> {
        self.run("get_stream", self.inner.get_stream(patient, cid))
            .await
    }

    async fn verify(&self, cid: &Cid) -> VaultResult<ObjectStatus> {
        self.run("verify", self.inner.verify(cid)).await
    }

    async fn shred(&self, cid: &Cid) -> VaultResult<()> {
        self.run("shred", self.inner.shred(cid)).await
    }

    async fn erase_patient(&self, patient: HhNumber) -> VaultResult<()> {
        self.run("erase_patient", self.inner.erase_patient(patient))
            .await
    }

    async fn health(&self) -> VaultResult<VaultHealth> {
        self.run("health", self.inner.health()).await
    }

    async fn objects(&self, after: Option<Cid>, limit: usize) -> VaultResult<Vec<StoredObject>> {
        self.run("objects", self.inner.objects(after, limit)).await
    }
}
