//! Word lists for realistic Argentine dealer data. Every character here must exist in Windows-1252
//! (a test checks it), because the default drop is written in that encoding.

/// Given names; some compound, as the DMS stores them.
pub(super) const FIRST_NAMES: &[&str] = &[
    "José",
    "María",
    "Juan Carlos",
    "José María",
    "Martín",
    "Sebastián",
    "Nicolás",
    "Agustín",
    "Lucía",
    "Sofía",
    "Valentina",
    "Ramón",
    "Néstor",
    "Héctor",
    "Germán",
    "Julián",
    "Joaquín",
    "Florencia",
    "Mónica",
    "Verónica",
    "Inés",
    "Belén",
    "Ángel",
    "Matías",
    "Tomás",
    "Facundo",
    "Gonzalo",
    "Ezequiel",
    "Marcela",
    "Graciela",
    "Silvina",
    "Andrés",
    "Raúl",
    "Rubén",
    "Cecilia",
    "Patricia",
    "Daniel",
    "Alejandro",
    "Fernando",
    "Gabriela",
    "Carolina",
    "Ana Laura",
    "María José",
    "Jorge",
    "Diego",
    "Pablo",
    "Federico",
    "Romina",
    "Natalia",
    "Lautaro",
    "Benjamín",
    "Máximo",
    "Camila",
    "Milagros",
    "Úrsula",
    "Iñaki",
    "Begoña",
    "Noemí",
    "Cristian",
    "Walter",
];

/// Family names, with the accents and ñ a cp1252 export must keep.
pub(super) const LAST_NAMES: &[&str] = &[
    "González",
    "Rodríguez",
    "Gómez",
    "Fernández",
    "López",
    "Díaz",
    "Martínez",
    "Pérez",
    "García",
    "Sánchez",
    "Romero",
    "Sosa",
    "Álvarez",
    "Torres",
    "Ruiz",
    "Ramírez",
    "Flores",
    "Acosta",
    "Benítez",
    "Medina",
    "Suárez",
    "Herrera",
    "Aguirre",
    "Pereyra",
    "Gutiérrez",
    "Giménez",
    "Molina",
    "Silva",
    "Castro",
    "Rojas",
    "Ortiz",
    "Núñez",
    "Luna",
    "Juárez",
    "Cabrera",
    "Ríos",
    "Ferreyra",
    "Godoy",
    "Morales",
    "Domínguez",
    "Peña",
    "Muñoz",
    "Ibáñez",
    "Ordóñez",
    "Castaño",
    "Quiroga",
    "Villalba",
    "Ledesma",
    "Vázquez",
    "Paz",
    "Carrizo",
    "Maldonado",
    "Ojeda",
    "Correa",
    "Figueroa",
    "Cáceres",
    "Mansilla",
    "Zárate",
    "Bustos",
    "Ávila",
    "Espíndola",
    "Montenegro",
    "Iturriaga",
    "Echeverría",
    "Bianchi",
    "Rossi",
    "Ferrari",
    "Russo",
    "Cohen",
    "O'Connor",
];

/// First word of company names.
pub(super) const COMPANY_KINDS: &[&str] = &[
    "Transportes",
    "Agropecuaria",
    "Constructora",
    "Logística",
    "Distribuidora",
    "Servicios",
    "Comercial",
    "Inversiones",
    "Metalúrgica",
    "Estancia",
    "Frigorífico",
    "Consultora",
    "Ferretería",
    "Panadería",
    "Laboratorios",
    "Bodegas",
];

/// Middle of company names.
pub(super) const COMPANY_NAMES: &[&str] = &[
    "del Sur",
    "La Esperanza",
    "Patagónica",
    "del Litoral",
    "San Jorge",
    "El Ombú",
    "Los Andes",
    "Pampeana",
    "Río de la Plata",
    "Norte Grande",
    "La Tradición",
    "Don Ramón",
    "Cuyana",
    "Santa Lucía",
    "El Álamo",
    "Mediterránea",
    "Hnos. Núñez",
    "Peña y Asociados",
    "Del Valle",
    "Ñandubay",
    "La Cañada",
    "Tres Arroyos",
];

/// Legal form suffixes.
pub(super) const COMPANY_SUFFIXES: &[&str] = &["S.A.", "S.R.L.", "S.A.S.", "S.H.", "S.A.C.I."];

/// (Localidad, Provincia, base postal code, phone area code without the leading 0).
pub(super) const PLACES: &[(&str, &str, &str, &str)] = &[
    ("Ciudad Autónoma de Buenos Aires", "CABA", "1043", "11"),
    ("Palermo", "CABA", "1425", "11"),
    ("Caballito", "CABA", "1405", "11"),
    ("La Plata", "Buenos Aires", "1900", "221"),
    ("Mar del Plata", "Buenos Aires", "7600", "223"),
    ("Bahía Blanca", "Buenos Aires", "8000", "291"),
    ("Pilar", "Buenos Aires", "1629", "230"),
    ("San Isidro", "Buenos Aires", "1642", "11"),
    ("Morón", "Buenos Aires", "1708", "11"),
    ("Quilmes", "Buenos Aires", "1878", "11"),
    ("Lomas de Zamora", "Buenos Aires", "1832", "11"),
    ("Tandil", "Buenos Aires", "7000", "249"),
    ("Junín", "Buenos Aires", "6000", "236"),
    ("Pergamino", "Buenos Aires", "2700", "2477"),
    ("Córdoba", "Córdoba", "5000", "351"),
    ("Río Cuarto", "Córdoba", "5800", "358"),
    ("Villa María", "Córdoba", "5900", "353"),
    ("Rosario", "Santa Fe", "2000", "341"),
    ("Santa Fe", "Santa Fe", "3000", "342"),
    ("Rafaela", "Santa Fe", "2300", "3492"),
    ("Venado Tuerto", "Santa Fe", "2600", "3462"),
    ("Mendoza", "Mendoza", "5500", "261"),
    ("San Rafael", "Mendoza", "5600", "260"),
    ("San Miguel de Tucumán", "Tucumán", "4000", "381"),
    ("Salta", "Salta", "4400", "387"),
    ("San Salvador de Jujuy", "Jujuy", "4600", "388"),
    ("Neuquén", "Neuquén", "8300", "299"),
    ("San Carlos de Bariloche", "Río Negro", "8400", "294"),
    ("Viedma", "Río Negro", "8500", "2920"),
    ("Comodoro Rivadavia", "Chubut", "9000", "297"),
    ("Trelew", "Chubut", "9100", "280"),
    ("Río Gallegos", "Santa Cruz", "9400", "2966"),
    ("Ushuaia", "Tierra del Fuego", "9410", "2901"),
    ("Paraná", "Entre Ríos", "3100", "343"),
    ("Concordia", "Entre Ríos", "3200", "345"),
    ("Posadas", "Misiones", "3300", "376"),
    ("Corrientes", "Corrientes", "3400", "379"),
    ("Resistencia", "Chaco", "3500", "362"),
    ("Santa Rosa", "La Pampa", "6300", "2954"),
    ("San Juan", "San Juan", "5400", "264"),
    ("San Luis", "San Luis", "5700", "266"),
    ("Santiago del Estero", "Santiago del Estero", "4200", "385"),
    ("La Rioja", "La Rioja", "5300", "380"),
    (
        "San Fernando del Valle de Catamarca",
        "Catamarca",
        "4700",
        "383",
    ),
    ("Formosa", "Formosa", "3600", "370"),
];

/// Street names for addresses.
pub(super) const STREETS: &[&str] = &[
    "Av. Corrientes",
    "Av. Rivadavia",
    "San Martín",
    "Belgrano",
    "Av. Colón",
    "Sarmiento",
    "Mitre",
    "Moreno",
    "9 de Julio",
    "25 de Mayo",
    "Hipólito Yrigoyen",
    "Av. Juan B. Justo",
    "Pellegrini",
    "Güemes",
    "Lavalle",
    "Tucumán",
    "Entre Ríos",
    "Av. de Mayo",
    "Dorrego",
    "Alsina",
    "Maipú",
    "Ituzaingó",
    "Bv. Oroño",
    "Av. Vélez Sarsfield",
    "Castelli",
    "Echeverría",
    "Av. Gral. Paz",
    "Av. del Libertador",
    "Juan José Paso",
    "Urquiza",
    "Av. Santa Fe",
    "Peña",
    "Catamarca",
    "Avellaneda",
    "Brown",
    "Independencia",
];

/// Highways for rural addresses (the ones that sometimes carry a second line).
pub(super) const ROUTES: &[&str] = &[
    "Ruta 8",
    "Ruta Nac. 9",
    "Ruta 5",
    "Ruta Prov. 6",
    "Ruta 40",
    "Ruta 3",
];

/// Free e-mail domains clients use.
pub(super) const MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "hotmail.com",
    "yahoo.com.ar",
    "outlook.com",
    "live.com.ar",
    "fibertel.com.ar",
    "arnet.com.ar",
    "speedy.com.ar",
];

/// The dealer's own mail domain (users' work e-mail).
pub(super) const DEALER_DOMAIN: &str = "automotoresdelplata.com.ar";

/// (Marca, VIN world manufacturer prefix, models as (Modelo, versions)).
pub(super) type Brand = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static [&'static str])],
);

/// The makes an Argentine multi-brand dealer sells.
pub(super) const BRANDS: &[Brand] = &[
    (
        "Toyota",
        "8AJ",
        &[
            (
                "Hilux",
                &["SRX 4x4 AT", "DX 4x2 MT", "SR 4x4 MT", "GR-Sport 4x4 AT"],
            ),
            ("Corolla", &["XEi 2.0 CVT", "SEG Hybrid", "GR-Sport"]),
            ("Etios", &["XLS 1.5 MT", "X 1.5 5P"]),
            ("Yaris", &["XLS Pack CVT", "S 1.5"]),
            ("SW4", &["SRX 2.8 AT 7A", "Diamond"]),
        ],
    ),
    (
        "Volkswagen",
        "8AW",
        &[
            (
                "Amarok",
                &["V6 Extreme 258cv", "Highline 2.0 TDI", "Comfortline 4x2"],
            ),
            ("Gol Trend", &["Trendline 1.6", "Comfortline 1.6 MSI"]),
            ("Polo", &["Track 1.6", "Highline 170 TSI AT"]),
            ("Taos", &["Comfortline 250 TSI", "Highline 250 TSI"]),
            ("T-Cross", &["Trendline 200 TSI", "Highline AT"]),
        ],
    ),
    (
        "Ford",
        "8AF",
        &[
            (
                "Ranger",
                &[
                    "XLT 3.2 4x4 AT",
                    "XLS 2.2 4x2",
                    "Raptor 3.0 V6",
                    "Limited 4x4",
                ],
            ),
            ("Ka", &["S 1.5", "SE 1.5 AT"]),
            ("EcoSport", &["Titanium 1.5", "Freestyle 1.6"]),
            ("Territory", &["Titanium 1.8 T"]),
            ("Maverick", &["Lariat Hybrid"]),
        ],
    ),
    (
        "Fiat",
        "8AP",
        &[
            ("Cronos", &["Drive 1.3 GSE", "Precision 1.3 CVT"]),
            ("Toro", &["Freedom 1.8 AT", "Volcano 2.0 4x4"]),
            ("Argo", &["Drive 1.3", "Trekking 1.3"]),
            ("Strada", &["Endurance CS 1.4", "Volcano CD 1.3"]),
            ("Pulse", &["Impetus 1.0 T CVT"]),
        ],
    ),
    (
        "Chevrolet",
        "8AG",
        &[
            ("Onix", &["LT 1.2", "Premier 1.0 T AT"]),
            ("Cruze", &["LTZ+ 1.4 T AT"]),
            ("Tracker", &["LTZ 1.2 T AT", "Premier"]),
            ("S10", &["LTZ 2.8 4x4 AT", "High Country"]),
        ],
    ),
    (
        "Renault",
        "8A1",
        &[
            ("Kangoo", &["Stepway 1.6", "Confort 5A"]),
            ("Sandero", &["Life 1.6", "Stepway Intens CVT"]),
            ("Logan", &["Life 1.6", "Intens CVT"]),
            ("Duster", &["Iconic 1.3 T 4x4", "Intens 1.6"]),
            ("Alaskan", &["Emotion 2.3 4x4", "Iconic 4x4 AT"]),
        ],
    ),
    (
        "Peugeot",
        "8AD",
        &[
            ("208", &["Active 1.6", "Allure Pack AT", "GT 1.0 T200"]),
            ("2008", &["Allure 1.6", "GT Line"]),
            ("308", &["Feline 1.6 THP"]),
            ("Partner", &["Patagónica 1.6", "Confort 1.6 HDi"]),
        ],
    ),
];

/// Body colours as the DMS names them.
pub(super) const COLORS: &[&str] = &[
    "Blanco",
    "Gris Plata",
    "Negro",
    "Rojo",
    "Azul",
    "Gris Oscuro",
    "Blanco Perla",
    "Bordó",
    "Beige",
    "Verde",
    "Marrón",
    "Celeste",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn all_words() -> Vec<&'static str> {
        let mut w: Vec<&str> = Vec::new();
        for list in [
            FIRST_NAMES,
            LAST_NAMES,
            COMPANY_KINDS,
            COMPANY_NAMES,
            COMPANY_SUFFIXES,
            STREETS,
            ROUTES,
            MAIL_DOMAINS,
            COLORS,
        ] {
            w.extend_from_slice(list);
        }
        for (a, b, c, d) in PLACES {
            w.extend_from_slice(&[a, b, c, d]);
        }
        for (brand, wmi, models) in BRANDS {
            w.push(brand);
            w.push(wmi);
            for (model, versions) in *models {
                w.push(model);
                w.extend_from_slice(versions);
            }
        }
        w
    }

    #[test]
    fn every_word_encodes_in_windows_1252() {
        for word in all_words() {
            let (_, _, unmappable) = encoding_rs::WINDOWS_1252.encode(word);
            assert!(!unmappable, "{word:?} is not Windows-1252");
            assert!(
                !word.contains([';', '"', '\n', '\r', '<', '>', '&']),
                "{word:?} holds a special char"
            );
        }
    }

    #[test]
    fn lists_keep_the_accents_we_promise() {
        assert!(LAST_NAMES.contains(&"Núñez") && LAST_NAMES.contains(&"Peña"));
        assert!(FIRST_NAMES.contains(&"José María"));
        assert!(COMPANY_KINDS.contains(&"Transportes") && COMPANY_NAMES.contains(&"del Sur"));
    }
}
