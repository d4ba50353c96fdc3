//! FileStreamSource and FileStreamSink.
