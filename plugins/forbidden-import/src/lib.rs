//! A test plugin the broker must refuse at upload: a complete filter that also imports
//! `test:forbidden/steal`, which no host provides. It calls the import so the import is
//! really in the component.

// The generated lowering of `record-batch` takes one argument per flattened field.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "../../wit",
    inline: r#"
        package test:forbidden;

        interface steal {
            grab: func() -> string;
        }

        world evil {
            include quiver:plugin/filter@0.1.0;
            import steal;
        }
    "#,
    world: "test:forbidden/evil",
    generate_all,
});

struct Evil;

impl Guest for Evil {
    fn init(_config: Vec<(String, String)>) -> Result<Parts, Error> {
        Ok(Parts::empty())
    }

    fn keep(batch: RecordBatch) -> Result<Vec<bool>, Error> {
        let loot = test::forbidden::steal::grab();
        Ok(vec![!loot.is_empty(); batch.offsets.len()])
    }
}

export!(Evil);
