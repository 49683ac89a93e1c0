//! Writing challenge-format band files (for lens-synth and the tests), through fitsio's high-level API.

use std::path::Path;

use crate::naming::BANDS;

/// Writes a training-layout file: an empty primary HDU, then a binary table with one row holding the object id
/// (string column `id_column`) and the image as a float64 vector column `band_<b>`; `tdim` adds a TDIM keyword.
pub fn write_table_file(
    path: &Path,
    id_column: &str,
    id: &str,
    band: usize,
    image: &[f64],
    (height, width): (usize, usize),
    tdim: bool,
) -> Result<(), fitsio::errors::Error> {
    use fitsio::tables::{ColumnDataType, ColumnDescription};
    let mut f = fitsio::FitsFile::create(path).overwrite().open()?;
    let id_col =
        ColumnDescription::new(id_column).with_type(ColumnDataType::String).that_repeats(id.len().max(1)).create()?;
    let band_name = format!("band_{}", BANDS[band]);
    let img_col = ColumnDescription::new(band_name.clone())
        .with_type(ColumnDataType::Double)
        .that_repeats(image.len())
        .create()?;
    let hdu = f.create_table("", &[id_col, img_col])?;
    hdu.write_col(&mut f, id_column, &[id.to_string()])?;
    hdu.write_col(&mut f, band_name, image)?;
    if tdim {
        hdu.write_key(&mut f, "TDIM2", format!("({width},{height})"))?;
    }
    Ok(())
}

/// Writes a blind-layout file: the `height x width` float64 image in the primary HDU.
pub fn write_image_file(path: &Path, image: &[f64], height: usize, width: usize) -> Result<(), fitsio::errors::Error> {
    use fitsio::images::{ImageDescription, ImageType};
    let desc = ImageDescription { data_type: ImageType::Double, dimensions: &[height, width] };
    let mut f = fitsio::FitsFile::create(path).with_custom_primary(&desc).overwrite().open()?;
    let hdu = f.primary_hdu()?;
    hdu.write_image(&mut f, image)
}
