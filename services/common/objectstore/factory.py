from services.common.objectstore.base import ObjectStore
from services.common.settings import Settings


def make_store(settings: Settings, bucket: str) -> ObjectStore:
    if settings.store_backend == "s3":
        from services.common.objectstore.s3 import S3Store

        return S3Store(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key.get_secret_value(),
            secret_key=settings.s3_secret_key.get_secret_value(),
            region=settings.s3_region,
            bucket=bucket,
        )
    from services.common.objectstore.local import LocalStore

    return LocalStore(settings.local_store_root, bucket)
