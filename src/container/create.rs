//! `snap create IMAGE NAME`: a container record and its upper and work directories.

use super::{ContainerError, dir, image_file, io_err, open_db};
use crate::db::ContainerRecord;
use crate::model::ContainerName;
use crate::store::Store;

pub fn create(
    store: &Store,
    image: &str,
    name: &ContainerName,
) -> Result<ContainerRecord, ContainerError> {
    let db = open_db(store)?;
    let image = db.resolve(image)?;
    if db.container(name)?.is_some() {
        return Err(ContainerError::Exists(name.to_string()));
    }
    let dir = dir(store, name);
    // Leftovers of an interrupted create (no record) are replaced.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    for sub in ["upper", "work"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).map_err(io_err(&path))?;
    }
    let record = ContainerRecord {
        name: name.clone(),
        image: image.id,
    };
    db.add_container(&record)?;
    let image_file = image_file(&dir);
    std::fs::write(&image_file, format!("{}\n", record.image)).map_err(io_err(&image_file))?;
    Ok(record)
}
