//! The six exports as a closed set: name, file name, random stream tag and row count. What each
//! export's own file answers (headers, dirty IDs, how a row is filled) is in `entity_files`,
//! so the entity files can name an entity without importing the table that calls them.

/// One entity of the dealer's export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Entity {
    Usuarios,
    Sucursales,
    Clientes,
    Ventas,
    Unidades,
    Servicios,
}

impl Entity {
    /// All entities in dependency order (targets before the rows that reference them).
    pub(super) const ALL: [Entity; 6] = [
        Entity::Usuarios,
        Entity::Sucursales,
        Entity::Clientes,
        Entity::Ventas,
        Entity::Unidades,
        Entity::Servicios,
    ];

    /// The entity name used in the manifest.
    pub(super) fn name(self) -> &'static str {
        match self {
            Entity::Usuarios => "usuarios",
            Entity::Sucursales => "sucursales",
            Entity::Clientes => "clientes",
            Entity::Ventas => "ventas",
            Entity::Unidades => "unidades",
            Entity::Servicios => "servicios",
        }
    }

    /// Tag mixed into the random streams; fixed forever so outputs stay reproducible.
    pub(super) fn tag(self) -> u8 {
        self as u8 + 1
    }
}
